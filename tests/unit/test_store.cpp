#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "store/commit_health.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_under_test.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

using namespace taskhost;
using namespace taskhost::model;
using taskhost::store::StoreError;
using taskhost::store::TaskConnection;
using taskhost::store::SqliteStore;
using taskhost::store::Store;
using taskhost::testing::StoreUnderTest;
using taskhost::testing::StoreUnderTestOptions;
using nlohmann::json;

namespace {

// The end of a job from its parts (the store takes them as one JobEnd).
void end_job(Store &store, const std::string &id, JobStatus status, int64_t finished_at,
             std::optional<std::string> error, std::optional<std::string> traceback, std::optional<Artifact> artifact,
             std::function<void()> on_durable = {}) {
    Store::JobEnd end;
    end.status = status;
    end.finished_at = finished_at;
    end.error = std::move(error);
    end.traceback = std::move(traceback);
    end.result_artifact = std::move(artifact);
    store.finish_job(id, std::move(end), std::move(on_durable));
}

// The same JSON value: PostgreSQL's jsonb gives back its own spacing and
// key order.
bool same_json(const std::string &a, const std::string &b) { return json::parse(a) == json::parse(b); }

Job make_job(const std::string &task = "add", std::string params = R"({"a":1,"b":2})") {
    Job j;
    j.id = new_ulid_string();
    j.task_name = task;
    j.params_json = std::move(params);
    j.submitted_at = now_us();
    return j;
}

ArtifactInput art(std::string data, std::optional<std::string> parent = std::nullopt,
                  std::optional<std::string> id = std::nullopt) {
    ArtifactInput in;
    in.data_json = std::move(data);
    in.parent_id = std::move(parent);
    in.id = std::move(id);
    return in;
}

// A fresh directory under the system temp dir, removed afterwards.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() / ("taskhost-store-test-" + new_ulid_string());
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string &name) const { return (path / name).string(); }
};

SqliteStore::Options memory_options() {
    SqliteStore::Options o;
    o.path = ":memory:";
    return o;
}

// Holds the writer thread inside an on_durable callback until released, so
// the test can queue several writes that will then share one batch.
struct WriterGate {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, released = false;

    void block(Store &store) {
        Job j = make_job("gate");
        store.insert_job(j);
        end_job(store, j.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, std::nullopt, [this] {
            std::unique_lock lock(mu);
            entered = true;
            cv.notify_all();
            cv.wait(lock, [this] { return released; });
        });
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return entered; });
    }
    void release() {
        std::lock_guard lock(mu);
        released = true;
        cv.notify_all();
    }
};

void wait_until_queued(const Store &store, size_t n) {
    // Polls a condition (not a timed guess); the threads enqueue promptly.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (store.pending_writes() < n) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::yield();
    }
}

}  // namespace

TEST_CASE("store: job status names") {
    for (auto s : {JobStatus::pending, JobStatus::running, JobStatus::completed, JobStatus::failed, JobStatus::canceled,
                   JobStatus::scheduled})
        CHECK(parse_job_status(to_string(s)) == s);
    CHECK_FALSE(is_terminal(JobStatus::scheduled));
    CHECK(to_string(JobStatus::canceled) == "canceled");
    CHECK_FALSE(parse_job_status("cancelled").has_value());
    CHECK(is_terminal(JobStatus::failed));
    CHECK_FALSE(is_terminal(JobStatus::running));
}

TEST_CASE("store: insert and get a job, every field round trips") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job("greet_user", R"({"name":"Ada"})");
    j.timeout_s = 2.5;
    store.insert_job(j);

    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->id == j.id);
    CHECK(got->task_name == "greet_user");
    CHECK(got->params_json == R"({"name":"Ada"})");
    CHECK(got->status == JobStatus::pending);
    CHECK(got->submitted_at == j.submitted_at);
    CHECK(got->started_at == 0);
    CHECK(got->finished_at == 0);
    CHECK_FALSE(got->error);
    CHECK_FALSE(got->error_traceback);
    CHECK_FALSE(got->artifact_id);
    CHECK(got->progress == -1);
    CHECK(got->progress_message.empty());
    CHECK(got->timeout_s == 2.5);

    CHECK_FALSE(store.get_job("01ARZ3NDEKTSV4RRFFQ69G5FAV"));

    // A duplicate id is the caller's error, reported to the caller.
    try {
        store.insert_job(j);
        FAIL("duplicate insert must throw");
    } catch (const StoreError &e) {
        CHECK(e.kind == StoreError::Kind::invalid);
        CHECK(std::string(e.what()).find("UNIQUE") != std::string::npos);
    }
    CHECK(store.count_jobs(std::nullopt) == 1);
}

TEST_CASE("store: priority, run_at and a scheduled job round trip; a due mark makes it pending") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job("t");
    j.status = JobStatus::scheduled;
    j.priority = -7;
    j.run_at = j.submitted_at + 5'000'000;
    store.insert_job(j);
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::scheduled);
    CHECK(got->priority == -7);
    CHECK(got->run_at == j.run_at);
    CHECK(store.count_jobs(JobStatus::scheduled) == 1);
    store.job_due(j.id);
    store.flush();
    CHECK(store.get_job(j.id)->status == JobStatus::pending);
    CHECK(store.count_jobs(JobStatus::scheduled) == 0);
    // A due job starts whether or not its mark has been written.
    Job k = make_job("t");
    k.status = JobStatus::scheduled;
    k.run_at = k.submitted_at;
    store.insert_job(k);
    CHECK(store.start_job(k.id, now_us()));
}

TEST_CASE("store: a retry policy round trips; a failed attempt waits scheduled with its log; a lost one is logged") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job("t");
    j.retry = {5, model::Backoff::fixed, 2, 9, false};
    j.retry_safe = true;
    store.insert_job(j);
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->retry == j.retry);
    CHECK(got->attempt_log.empty());

    const int64_t started = now_us();
    REQUIRE(store.start_job(j.id, started));
    Store::JobEnd retry;
    retry.retry_at = started + 2'000'000;
    retry.attempt_log = model::append_attempt("", {1, started, started + 10, "boom", ""});
    std::promise<void> durable;
    store.finish_job(j.id, std::move(retry), [&] { durable.set_value(); });
    durable.get_future().wait();
    got = store.get_job(j.id);
    CHECK(got->status == JobStatus::scheduled);
    CHECK(got->run_at == started + 2'000'000);
    CHECK(got->started_at == 0);
    CHECK(got->attempts == 1);
    CHECK(same_json(got->attempt_log, model::append_attempt("", {1, started, started + 10, "boom", ""})));
    // Its next attempt starts from scheduled.
    REQUIRE(store.start_job(j.id, now_us()));
    CHECK(store.get_job(j.id)->attempts == 2);

    // Lost with its host: requeued while its policy has attempts left (5,
    // not the 3 of a retry-safe task without one), the lost one logged.
    for (int attempt = 2; attempt < 5; ++attempt) {
        CAPTURE(attempt);
        store.recover("restarted", now_us());
        auto again = store.get_job(j.id);
        CHECK(again->status == JobStatus::pending);
        const json log = json::parse(again->attempt_log);
        REQUIRE(log.size() == static_cast<size_t>(attempt));
        CHECK(log.back()["attempt"] == attempt);
        CHECK(log.back()["error"] == "restarted");
        if (store.shared()) REQUIRE(store.claim_pending({{"t", ""}}, 10).size() == 1);
        REQUIRE(store.start_job(j.id, now_us()));
    }
    store.recover("restarted", now_us());
    auto spent = store.get_job(j.id);
    CHECK(spent->status == JobStatus::failed);
    CHECK(spent->attempts == 5);
    CHECK(json::parse(spent->attempt_log).size() == 4);  // the last one is the job's own error
    CHECK(spent->error == "restarted");
}

TEST_CASE("store: schedules round trip; a run moves one on only from the run it fired; one per task from plugins") {
    StoreUnderTest owned;
    Store &store = *owned;
    model::Schedule s;
    s.id = new_ulid_string();
    s.task_name = "add";
    s.params_json = R"({"a":1})";
    s.cron = "*/5 * * * *";
    s.time_zone = "Europe/Oslo";
    s.created_at = s.updated_at = 1000;
    s.next_run_at = 5000;
    REQUIRE(store.insert_schedule(s));
    CHECK_FALSE(store.insert_schedule(s));  // its id is taken
    auto got = store.get_schedule(s.id);
    REQUIRE(got);
    CHECK(got->task_name == "add");
    CHECK(got->params_json == R"({"a":1})");
    CHECK(got->cron == "*/5 * * * *");
    CHECK(got->time_zone == "Europe/Oslo");
    CHECK(got->enabled);
    CHECK_FALSE(got->from_plugin);
    CHECK(got->created_at == 1000);
    CHECK(got->next_run_at == 5000);
    CHECK(got->last_run_at == 0);
    CHECK(got->last_job_id.empty());
    CHECK(got->runs == 0);

    // The run of 5000: only once, however many fire it.
    CHECK(store.record_schedule_run(s.id, {5001, "J1", "", true}, 5000, 9000));
    CHECK_FALSE(store.record_schedule_run(s.id, {5002, "J2", "", true}, 5000, 9000));
    got = store.get_schedule(s.id);
    CHECK(got->next_run_at == 9000);
    CHECK(got->last_run_at == 5001);
    CHECK(got->last_job_id == "J1");
    CHECK(got->runs == 1);
    // Out of turn ($trigger): next_run_at stays; a run without a new job
    // (none, or one made before) counts none.
    CHECK(store.record_schedule_run(s.id, {6000, "J3", "", true}, std::nullopt, 0));
    CHECK(store.record_schedule_run(s.id, {6001, "J3", "", false}, std::nullopt, 0));
    CHECK(store.record_schedule_run(s.id, {9001, "", "Task 'add' not found"}, 9000, 0));
    got = store.get_schedule(s.id);
    CHECK(got->runs == 2);
    CHECK(got->last_job_id.empty());
    CHECK(got->last_error == "Task 'add' not found");
    CHECK(got->next_run_at == 0);  // none: never again
    CHECK_FALSE(store.record_schedule_run("01ARZ3NDEKTSV4RRFFQ69G5FAV", {1, "J", "", true}, std::nullopt, 0));

    // An edit sets what people edit and keeps what runs recorded; its next
    // run only when asked to.
    CHECK(store.record_schedule_run(s.id, {9002, "", "", false}, std::nullopt, 0));
    s.params_json = R"({"a":2})";
    s.next_run_at = 1;  // a stale read
    CHECK(store.update_schedule(s, false));
    CHECK(store.get_schedule(s.id)->params_json == R"({"a":2})");
    CHECK(store.get_schedule(s.id)->next_run_at == 0);
    s.next_run_at = 12000;
    CHECK(store.update_schedule(s, true));
    CHECK(store.get_schedule(s.id)->next_run_at == 12000);
    s.enabled = false;
    s.cron = "@daily";
    s.next_run_at = 0;
    s.runs = 99;
    s.updated_at = 7000;
    CHECK(store.update_schedule(s, true));
    got = store.get_schedule(s.id);
    CHECK_FALSE(got->enabled);
    CHECK(got->next_run_at == 0);
    CHECK(got->cron == "@daily");
    CHECK(got->updated_at == 7000);
    CHECK(got->runs == 2);
    CHECK(got->last_error.empty());

    // A plugin declares one schedule per task: a second insert does nothing.
    model::Schedule declared = s;
    declared.id = new_ulid_string();
    declared.task_name = "tick";
    declared.from_plugin = true;
    REQUIRE(store.insert_schedule(declared));
    model::Schedule again = declared;
    again.id = new_ulid_string();
    CHECK_FALSE(store.insert_schedule(again));
    again.from_plugin = false;  // people may make as many as they like
    CHECK(store.insert_schedule(again));
    auto all = store.list_schedules();
    REQUIRE(all.size() == 3);
    CHECK(all[0].id == s.id);  // oldest first
    CHECK(all[1].from_plugin);

    CHECK(store.delete_schedule(s.id));
    CHECK_FALSE(store.delete_schedule(s.id));
    CHECK_FALSE(store.update_schedule(s, true));
    CHECK_FALSE(store.get_schedule(s.id));
    CHECK(store.list_schedules().size() == 2);

    // A job names the schedule that made it.
    Job j = make_job("add", "{}");
    j.schedule_id = declared.id;
    store.insert_job(j);
    CHECK(store.get_job(j.id)->schedule_id == declared.id);
    CHECK(store.get_job(store.list_jobs(std::nullopt, 1, 0)[0].id)->schedule_id == declared.id);
}

TEST_CASE("store: retention deletes finished jobs oldest first, in batches, with their result artifacts") {
    StoreUnderTest owned;
    Store &store = *owned;
    std::vector<Job> ended;
    std::vector<std::string> artifacts;
    for (int i = 0; i < 5; ++i) {
        Job j = make_job("t");
        store.insert_job(j);
        Artifact a;
        a.id = new_ulid_string();
        a.data_json = "{}";
        artifacts.push_back(a.id);
        std::promise<void> durable;
        // Finished at 1000, 2000, ... µs, one of them failed.
        end_job(store, j.id, i == 2 ? JobStatus::failed : JobStatus::completed, 1000 * (i + 1), std::nullopt,
                std::nullopt, a, [&] { durable.set_value(); });
        durable.get_future().wait();
        ended.push_back(j);
    }
    Job waiting = make_job("t");
    store.insert_job(waiting);
    Job running = make_job("t");
    store.insert_job(running);
    REQUIRE(store.start_job(running.id, now_us()));

    CHECK(store.finished_at_of_newest(1) == 5000);
    CHECK(store.finished_at_of_newest(5) == 1000);
    CHECK(store.finished_at_of_newest(6) == 0);
    CHECK(store.finished_at_of_newest(0) == 0);

    auto first = store.prune_jobs(3500, std::nullopt, 2, INT64_MAX);  // a batch of 2: the two oldest
    std::sort(first.jobs.begin(), first.jobs.end());                  // ids are in submit order
    CHECK(first.jobs == std::vector<std::string>{ended[0].id, ended[1].id});
    CHECK(first.artifacts == 2);
    auto by_status = store.prune_jobs(1'000'000, JobStatus::failed, 10, INT64_MAX);
    CHECK(by_status.jobs == std::vector<std::string>{ended[2].id});
    // A job whose idempotency key still names it stays until its key expires.
    Job keyed = make_job("t");
    keyed.idempotency_key = "k";
    keyed.request_hash = "h";
    REQUIRE(store.insert_keyed_job(keyed, 0));
    REQUIRE(store.start_job(keyed.id, now_us()));
    std::promise<void> keyed_end;
    end_job(store, keyed.id, JobStatus::completed, 2500, std::nullopt, std::nullopt, std::nullopt,
            [&] { keyed_end.set_value(); });
    keyed_end.get_future().wait();
    CHECK(store.prune_jobs(1'000'000, std::nullopt, 10, keyed.submitted_at).jobs.size() == 2);  // the others
    CHECK(store.get_job(keyed.id));
    CHECK(store.prune_jobs(1'000'000, std::nullopt, 10, keyed.submitted_at + 1).jobs ==
          std::vector<std::string>{keyed.id});
    auto rest = store.prune_jobs(1'000'000, std::nullopt, 10, INT64_MAX);
    CHECK(rest.jobs.empty());
    for (size_t i = 0; i < 5; ++i) {
        CHECK_FALSE(store.get_job(ended[i].id));
        CHECK_FALSE(store.get_artifact(artifacts[i]));
    }
    CHECK(store.get_job(waiting.id)->status == JobStatus::pending);
    CHECK(store.get_job(running.id)->status == JobStatus::running);
    CHECK(store.prune_jobs(INT64_MAX, std::nullopt, 10, INT64_MAX).jobs.empty());
}

TEST_CASE("store: one job per idempotency key; an expired key is taken from its old job") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job first = make_job("t");
    first.idempotency_key = "key-1";
    first.request_hash = "h1";
    REQUIRE(store.insert_keyed_job(first, first.submitted_at - 1'000'000));
    auto found = store.find_keyed_job("key-1", first.submitted_at - 1'000'000);
    REQUIRE(found);
    CHECK(found->id == first.id);
    CHECK(found->request_hash == "h1");
    CHECK_FALSE(store.find_keyed_job("key-1", first.submitted_at + 1));  // expired by then
    CHECK_FALSE(store.find_keyed_job("key-2", 0));

    // A second job with the key while the first holds it: nothing stored.
    Job second = make_job("t");
    second.idempotency_key = "key-1";
    second.request_hash = "h2";
    CHECK_FALSE(store.insert_keyed_job(second, first.submitted_at));
    CHECK_FALSE(store.get_job(second.id));
    // Once the first is older than the key lasts, the key moves.
    REQUIRE(store.insert_keyed_job(second, first.submitted_at + 1));
    CHECK(store.find_keyed_job("key-1", 0)->id == second.id);
    CHECK(store.get_job(first.id)->idempotency_key.empty());
    CHECK(store.count_jobs(std::nullopt) == 2);
}

TEST_CASE("store: list jobs newest first, filter, count, paging") {
    StoreUnderTest owned;
    Store &store = *owned;
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) {
        Job j = make_job("t" + std::to_string(i));
        store.insert_job(j);
        ids.push_back(j.id);
    }
    // Jobs 0, 3, 6, 9 become running.
    for (int i = 0; i < 10; i += 3) store.start_job(ids[static_cast<size_t>(i)], now_us());
    store.flush();

    auto all = store.list_jobs(std::nullopt, Store::no_limit, 0);
    REQUIRE(all.size() == 10);
    for (size_t i = 0; i < 10; ++i) CHECK(all[i].id == ids[9 - i]);

    auto page = store.list_jobs(std::nullopt, 3, 2);
    REQUIRE(page.size() == 3);
    CHECK(page[0].id == ids[7]);
    CHECK(page[2].id == ids[5]);
    CHECK(store.list_jobs(std::nullopt, 5, 8).size() == 2);
    CHECK(store.list_jobs(std::nullopt, 5, 20).empty());
    CHECK(store.list_jobs(std::nullopt, 0, 0).empty());

    auto running = store.list_jobs(JobStatus::running, Store::no_limit, 0);
    REQUIRE(running.size() == 4);
    CHECK(running[0].id == ids[9]);
    CHECK(running[3].id == ids[0]);
    for (auto &j : running) CHECK(j.status == JobStatus::running);
    auto running_page = store.list_jobs(JobStatus::running, 2, 1);
    REQUIRE(running_page.size() == 2);
    CHECK(running_page[0].id == ids[6]);
    CHECK(running_page[1].id == ids[3]);

    CHECK(store.count_jobs(std::nullopt) == 10);
    CHECK(store.count_jobs(JobStatus::running) == 4);
    CHECK(store.count_jobs(JobStatus::pending) == 6);
    CHECK(store.count_jobs(JobStatus::completed) == 0);
}

TEST_CASE("store: start_job and progress are applied in order") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    const int64_t started = now_us();
    store.start_job(j.id, started);
    store.update_progress(j.id, 0.25, "a quarter");
    store.update_progress(j.id, 0.5, "half way");
    store.flush();

    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::running);
    CHECK(got->started_at == started);
    CHECK(got->progress == 0.5);
    CHECK(got->progress_message == "half way");

    // A job cancelled before it started is not revived by a late start_job.
    Job k = make_job();
    store.insert_job(k);
    end_job(store, k.id, JobStatus::canceled, now_us(), std::nullopt, std::nullopt, std::nullopt);
    store.start_job(k.id, now_us());
    store.flush();
    CHECK(store.get_job(k.id)->status == JobStatus::canceled);
    CHECK(store.get_job(k.id)->started_at == 0);
}

TEST_CASE("store: flush returns only after the callbacks of the writes before it" *
          doctest::test_suite("concurrency")) {
    // ~JobManager relies on this: the callbacks use it, so it must not go
    // away while one is still to run.
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    WriterGate gate;  // holds the writer so that j's end and the flush share a batch
    gate.block(store);
    WriterGate in_callback;  // then holds it inside j's callback
    std::atomic<bool> callback_returned{false}, flushed{false};
    end_job(store, j.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, std::nullopt, [&] {
        std::unique_lock lock(in_callback.mu);
        in_callback.entered = true;
        in_callback.cv.notify_all();
        in_callback.cv.wait(lock, [&] { return in_callback.released; });
        callback_returned = true;
    });
    std::thread flusher([&] {
        store.flush();
        flushed = true;
    });
    wait_until_queued(store, 2);
    gate.release();
    {
        std::unique_lock lock(in_callback.mu);
        REQUIRE(in_callback.cv.wait_for(lock, std::chrono::seconds(30), [&] { return in_callback.entered; }));
    }
    // The callback has not returned, so neither may the flush (a bounded
    // wait for something that must not happen).
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (!flushed && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    CHECK_FALSE(flushed.load());
    in_callback.release();
    flusher.join();
    CHECK(flushed.load());
    CHECK(callback_returned.load());
}

TEST_CASE("store: finish_job stores the artifact and the job together, then on_durable") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    store.start_job(j.id, now_us());

    Artifact result;
    result.id = new_ulid_string();
    result.data_json = R"({"task_name":"add","params":{"a":1,"b":2},"result":3,"error":null})";
    const int64_t finished = now_us();

    std::promise<std::optional<Job>> seen;  // the job as a reader sees it inside on_durable
    end_job(store, j.id, JobStatus::completed, finished, std::nullopt, std::nullopt, result,
            [&] { seen.set_value(store.get_job(j.id)); });
    auto fut = seen.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto in_callback = fut.get();
    REQUIRE(in_callback);
    CHECK(in_callback->status == JobStatus::completed);  // already committed when called

    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::completed);
    CHECK(got->finished_at == finished);
    REQUIRE(got->artifact_id);
    CHECK(*got->artifact_id == result.id);

    auto a = store.get_artifact(result.id);
    REQUIRE(a);
    CHECK(same_json(a->data_json, result.data_json));
    CHECK(a->level == 0);
    CHECK_FALSE(a->parent_id);
    CHECK(a->tags_json == "[]");
    CHECK(a->created_at > 0);

    // Without an id the store makes one and links it.
    Job k = make_job();
    store.insert_job(k);
    Artifact anon;
    anon.data_json = "42";
    end_job(store, k.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, anon);
    store.flush();
    auto kk = store.get_job(k.id);
    REQUIRE(kk->artifact_id);
    CHECK(is_valid_ulid(*kk->artifact_id));
    CHECK(store.get_artifact(*kk->artifact_id)->data_json == "42");
}

TEST_CASE("store: a job never stored is inserted with its end in one write") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    j.status = JobStatus::running;
    j.started_at = now_us();
    j.progress = 0.5;
    j.progress_message = "halfway";

    Store::JobEnd end;
    end.status = JobStatus::completed;
    end.started_at = j.started_at;
    end.finished_at = j.started_at + 10;
    Artifact result;
    result.id = new_ulid_string();
    result.data_json = R"({"result":3})";
    end.result_artifact = result;
    end.insert_first = j;

    const auto before = store.write_stats();
    std::promise<void> durable;
    store.finish_job(j.id, std::move(end), [&] { durable.set_value(); });
    REQUIRE(durable.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    const auto after = store.write_stats();
    CHECK(after.writes - before.writes == 1);
    CHECK(after.commits - before.commits == 1);

    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::completed);
    CHECK(got->started_at == j.started_at);
    CHECK(got->finished_at == j.started_at + 10);
    CHECK(got->progress == doctest::Approx(0.5));
    CHECK(got->progress_message == "halfway");
    REQUIRE(got->artifact_id);
    CHECK(*got->artifact_id == result.id);
    CHECK(same_json(store.get_artifact(result.id)->data_json, result.data_json));
}

TEST_CASE("store: the end stores started_at when no running mark did, and keeps one that did") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job a = make_job(), b = make_job();
    store.insert_job(a);
    store.insert_job(b);
    store.start_job(b.id, 1000);
    Store::JobEnd ea;
    ea.status = JobStatus::completed;
    ea.started_at = 500;
    ea.finished_at = 900;
    store.finish_job(a.id, std::move(ea));
    Store::JobEnd eb;
    eb.status = JobStatus::failed;
    eb.started_at = 1000;
    eb.finished_at = 2000;
    eb.error = "boom";
    store.finish_job(b.id, std::move(eb));
    store.flush();
    CHECK(store.get_job(a.id)->started_at == 500);
    CHECK(store.get_job(b.id)->started_at == 1000);
    CHECK(store.get_job(b.id)->status == JobStatus::failed);
    CHECK(*store.get_job(b.id)->error == "boom");
}

TEST_CASE("store: finish_job failed without artifact keeps error and traceback") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    end_job(store, j.id, JobStatus::failed, now_us(), "ValueError: boom", "Traceback...\nValueError: boom",
            std::nullopt);
    store.flush();
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::failed);
    CHECK(got->error == "ValueError: boom");
    CHECK(got->error_traceback == "Traceback...\nValueError: boom");
    CHECK_FALSE(got->artifact_id);
    CHECK(store.count_artifacts() == 0);
}

TEST_CASE("store: finish_job whose artifact cannot be stored ends the job failed and reports it") {
    std::mutex mu;
    std::vector<std::string> errors;
    StoreUnderTestOptions o;
    o.on_write_error = [&](const std::string &e) {
        std::lock_guard lock(mu);
        errors.push_back(e);
    };
    StoreUnderTest owned(o);
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    Artifact bad;
    bad.id = new_ulid_string();
    bad.data_json = "{}";
    bad.parent_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";  // does not exist
    std::promise<void> durable;
    end_job(store, j.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, bad, [&] { durable.set_value(); });
    REQUIRE(durable.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::failed);
    REQUIRE(got->error);
    CHECK(got->error->find("01ARZ3NDEKTSV4RRFFQ69G5FAV") != std::string::npos);
    CHECK_FALSE(got->artifact_id);
    CHECK_FALSE(store.get_artifact(bad.id));
    std::lock_guard lock(mu);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].find(j.id) != std::string::npos);
}

TEST_CASE("store: a job never stored whose result cannot be stored is inserted failed, in one write") {
    StoreUnderTestOptions o;
    o.on_write_error = [](const std::string &) {};
    StoreUnderTest owned(o);
    Store &store = *owned;
    Artifact existing = store.save_artifact(art("1"));
    for (int variant = 0; variant < 2; ++variant) {
        Job j = make_job();
        j.status = JobStatus::running;
        j.started_at = now_us();
        Store::JobEnd end;
        end.status = JobStatus::completed;
        end.finished_at = j.started_at + 5;
        Artifact result;
        result.data_json = "{}";
        if (variant == 0) {
            result.id = new_ulid_string();
            result.parent_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";  // no such parent
        } else {
            result.id = existing.id;  // the plain insert of a result meets a taken id
        }
        end.result_artifact = result;
        end.insert_first = j;
        std::promise<void> durable;
        store.finish_job(j.id, std::move(end), [&] { durable.set_value(); });
        REQUIRE(durable.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        auto got = store.get_job(j.id);
        REQUIRE(got);
        CHECK(got->status == JobStatus::failed);
        REQUIRE(got->error);
        CHECK(got->error->find("result could not be stored") == 0);
        CHECK_FALSE(got->artifact_id);
        CHECK(got->started_at == j.started_at);
    }
    CHECK(store.get_artifact(existing.id)->data_json == "1");  // untouched
    CHECK(store.count_artifacts() == 1);
}

TEST_CASE("store: delete_job and flush") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    CHECK(store.delete_job(j.id));
    CHECK_FALSE(store.get_job(j.id));
    CHECK_FALSE(store.delete_job(j.id));

    // flush waits for fire-and-forget writes queued before it.
    Job k = make_job();
    store.insert_job(k);
    for (int i = 1; i <= 100; ++i) store.update_progress(k.id, i / 100.0, std::to_string(i));
    store.flush();
    CHECK(store.get_job(k.id)->progress_message == "100");
    CHECK(store.pending_writes() == 0);
}

TEST_CASE("store: a failing op in a batch fails alone") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job existing = make_job();
    store.insert_job(existing);
    Artifact root = store.save_artifact(art(R"({"root":true})"));

    WriterGate gate;
    gate.block(store);  // the writer now sits in a callback; writes pile up

    Job dup = existing;  // same id → UNIQUE violation
    Job fresh = make_job();
    std::atomic<int> dup_failed{0}, orphan_failed{0};
    std::optional<Artifact> child;
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
        try {
            store.insert_job(dup);
        } catch (const StoreError &) {
            dup_failed = 1;
        }
    });
    threads.emplace_back([&] { store.insert_job(fresh); });
    threads.emplace_back([&] {
        try {
            store.save_artifact(art("1", "01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        } catch (const StoreError &e) {
            orphan_failed = e.kind == StoreError::Kind::invalid ? 1 : 2;
        }
    });
    threads.emplace_back([&] { child = store.save_artifact(art("2", root.id)); });
    wait_until_queued(store, 4);
    gate.release();
    for (auto &t : threads) t.join();

    CHECK(dup_failed == 1);
    CHECK(orphan_failed == 1);
    CHECK(store.get_job(fresh.id));
    REQUIRE(child);
    CHECK(child->level == 1);
    CHECK(store.get_artifact(child->id));
    CHECK(store.count_jobs(std::nullopt) == 3);  // existing, gate, fresh
    CHECK(store.count_artifacts() == 2);
}

TEST_CASE("store: recover fails running jobs and returns pending ones oldest first") {
    StoreUnderTest owned;
    Store &store = *owned;
    std::vector<Job> jobs;
    for (int i = 0; i < 5; ++i) {
        jobs.push_back(make_job("t" + std::to_string(i)));
        store.insert_job(jobs.back());
    }
    store.start_job(jobs[1].id, now_us());
    store.start_job(jobs[3].id, now_us());
    end_job(store, jobs[4].id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, std::nullopt);

    const int64_t now = now_us();
    auto pending = store.recover("interrupted by a restart", now);
    REQUIRE(pending.size() == 2);
    CHECK(pending[0].id == jobs[0].id);
    CHECK(pending[1].id == jobs[2].id);
    CHECK(pending[0].task_name == "t0");

    for (int i : {1, 3}) {
        auto j = store.get_job(jobs[static_cast<size_t>(i)].id);
        CHECK(j->status == JobStatus::failed);
        CHECK(j->error == "interrupted by a restart");
        CHECK(j->finished_at == now);
    }
    CHECK(store.get_job(jobs[4].id)->status == JobStatus::completed);
    CHECK(store.count_jobs(JobStatus::running) == 0);
}

TEST_CASE("store: recover queues a retry-safe running job again, until its starts run out") {
    StoreUnderTest owned;
    Store &store = *owned;
    // Started, then queued again by each restart, until its starts are spent.
    Job spent = make_job("t");
    spent.retry_safe = true;
    store.insert_job(spent);
    REQUIRE(store.start_job(spent.id, now_us()));
    for (int i = 1; i < model::kMaxHostLossAttempts; ++i) {
        store.recover("restarted", now_us());
        if (store.shared()) REQUIRE(store.claim_pending({{"t", ""}}, 10).size() == 1);
        REQUIRE(store.start_job(spent.id, now_us()));
    }
    REQUIRE(store.get_job(spent.id)->attempts == model::kMaxHostLossAttempts);
    Job safe = make_job("t");
    safe.retry_safe = true;
    Job plain = make_job("t");
    for (const Job *j : {&safe, &plain}) {
        store.insert_job(*j);
        REQUIRE(store.start_job(j->id, now_us()));
    }

    auto pending = store.recover("restarted", now_us());
    auto again = store.get_job(safe.id);
    REQUIRE(again);
    CHECK(again->status == JobStatus::pending);
    CHECK(again->retry_safe);
    CHECK(again->started_at == 0);
    CHECK_FALSE(again->error);
    // Run again: here after a restart (SQLite), or by any host that has its
    // task (PostgreSQL: no host holds it).
    if (store.shared()) {
        CHECK(pending.empty());
        auto claimed = store.claim_pending({{"t", ""}}, 10);
        REQUIRE(claimed.size() == 1);
        CHECK(claimed[0].id == safe.id);
    } else {
        REQUIRE(pending.size() == 1);
        CHECK(pending[0].id == safe.id);
    }
    CHECK(store.start_job(safe.id, now_us()));
    CHECK(store.get_job(safe.id)->attempts == 2);
    for (const Job *j : {&spent, &plain}) {
        auto failed = store.get_job(j->id);
        CHECK(failed->status == JobStatus::failed);
        CHECK(failed->error == "restarted");
    }
}

TEST_CASE("store: artifact create, level, validation, upsert") {
    StoreUnderTest owned;
    Store &store = *owned;
    Artifact root = store.save_artifact(art(R"({"name":"root"})"));
    CHECK(is_valid_ulid(root.id));
    CHECK(root.level == 0);
    CHECK_FALSE(root.parent_id);
    CHECK(root.tags_json == "[]");
    CHECK(root.created_at > 0);
    CHECK(root.created_at == root.updated_at);

    ArtifactInput child_in = art(R"({"name":"child"})", root.id);
    child_in.tags_json = R"(["a","b"])";
    Artifact child = store.save_artifact(child_in);
    CHECK(child.level == 1);
    CHECK(child.parent_id == root.id);
    Artifact grandchild = store.save_artifact(art("[1,2,3]", child.id));
    CHECK(grandchild.level == 2);

    auto got = store.get_artifact(child.id);
    REQUIRE(got);
    CHECK(same_json(got->data_json, R"({"name":"child"})"));
    CHECK(same_json(got->tags_json, R"(["a","b"])"));
    CHECK(got->level == 1);
    CHECK(got->parent_id == root.id);
    CHECK(got->created_at == child.created_at);

    // Missing parent: invalid, naming the parent.
    try {
        store.save_artifact(art("1", std::string("01ARZ3NDEKTSV4RRFFQ69G5FAV")));
        FAIL("missing parent must throw");
    } catch (const StoreError &e) {
        CHECK(e.kind == StoreError::Kind::invalid);
        CHECK(std::string(e.what()).find("01ARZ3NDEKTSV4RRFFQ69G5FAV") != std::string::npos);
    }
    // Missing data.
    ArtifactInput no_data;
    try {
        store.save_artifact(no_data);
        FAIL("missing data must throw");
    } catch (const StoreError &e) {
        CHECK(e.kind == StoreError::Kind::invalid);
        CHECK(std::string(e.what()) == "data is required");
    }
    CHECK(store.count_artifacts() == 3);

    // Given id, new: created with that id.
    const std::string chosen = new_ulid_string();
    CHECK(store.save_artifact(art("\"x\"", std::nullopt, chosen)).id == chosen);

    // Upsert: same row (insertion order kept), created_at kept, updated_at refreshed.
    const int64_t before = now_us();
    Artifact up = store.save_artifact(art(R"({"name":"child v2"})", root.id, child.id));
    CHECK(up.id == child.id);
    CHECK(up.created_at == child.created_at);
    CHECK(up.updated_at >= before);
    CHECK(up.level == 1);
    auto listed = store.list_artifacts(Store::no_limit, 0);
    REQUIRE(listed.size() == 4);
    CHECK(listed[1].id == child.id);
    CHECK(same_json(listed[1].data_json, R"({"name":"child v2"})"));
    CHECK(listed[1].updated_at == up.updated_at);

    // An upsert may not make an artifact its own ancestor.
    CHECK_THROWS_AS(store.save_artifact(art("1", grandchild.id, root.id)), StoreError);
    CHECK_THROWS_AS(store.save_artifact(art("1", root.id, root.id)), StoreError);
    CHECK(same_json(store.get_artifact(root.id)->data_json, R"({"name":"root"})"));
}

TEST_CASE("store: update_artifact cascades levels") {
    StoreUnderTest owned;
    Store &store = *owned;
    Artifact root = store.save_artifact(art("\"root\""));
    Artifact child = store.save_artifact(art("\"child\"", root.id));
    Artifact grandchild = store.save_artifact(art("\"grandchild\"", child.id));
    Artifact other = store.save_artifact(art("\"other root\""));
    Artifact sibling = store.save_artifact(art("\"sibling\"", root.id));

    // Data-only update: levels and parent stay, updated_at moves, created_at stays.
    ArtifactInput data_only;
    data_only.data_json = "\"child v2\"";
    auto u = store.update_artifact(child.id, data_only);
    REQUIRE(u);
    CHECK(u->level == 1);
    CHECK(u->parent_id == root.id);
    CHECK(u->data_json == "\"child v2\"");
    CHECK(u->tags_json == "[]");
    CHECK(u->created_at == child.created_at);
    CHECK(u->updated_at >= child.updated_at);
    CHECK(store.get_artifact(grandchild.id)->level == 2);

    // Reparent child under another root: child 1, grandchild 2.
    ArtifactInput move;
    move.parent_id = other.id;
    u = store.update_artifact(child.id, move);
    REQUIRE(u);
    CHECK(u->parent_id == other.id);
    CHECK(u->level == 1);
    CHECK(u->data_json == "\"child v2\"");  // untouched field kept
    CHECK(store.get_artifact(grandchild.id)->level == 2);

    // Hang `other` under sibling (level 1): other 2, child 3, grandchild 4.
    ArtifactInput deeper;
    deeper.parent_id = sibling.id;
    u = store.update_artifact(other.id, deeper);
    REQUIRE(u);
    CHECK(u->level == 2);
    CHECK(store.get_artifact(child.id)->level == 3);
    CHECK(store.get_artifact(grandchild.id)->level == 4);
    CHECK(store.get_artifact(root.id)->level == 0);

    // Tags only.
    ArtifactInput tags;
    tags.tags_json = R"(["x"])";
    CHECK(store.update_artifact(grandchild.id, tags)->tags_json == R"(["x"])");
    CHECK(store.get_artifact(grandchild.id)->data_json == "\"grandchild\"");

    // Cycles are refused and change nothing.
    ArtifactInput cycle;
    cycle.parent_id = grandchild.id;
    try {
        store.update_artifact(root.id, cycle);
        FAIL("cycle must throw");
    } catch (const StoreError &e) {
        CHECK(e.kind == StoreError::Kind::invalid);
    }
    ArtifactInput self;
    self.parent_id = child.id;
    CHECK_THROWS_AS(store.update_artifact(child.id, self), StoreError);
    CHECK_FALSE(store.get_artifact(root.id)->parent_id);
    ArtifactInput missing_parent;
    missing_parent.parent_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    CHECK_THROWS_AS(store.update_artifact(child.id, missing_parent), StoreError);
    CHECK(store.get_artifact(child.id)->parent_id == other.id);

    CHECK_FALSE(store.update_artifact("01ARZ3NDEKTSV4RRFFQ69G5FAV", data_only));
}

TEST_CASE("store: delete_artifact orphans children, keeping their level") {
    StoreUnderTest owned;
    Store &store = *owned;
    Artifact root = store.save_artifact(art("0"));
    Artifact child = store.save_artifact(art("1", root.id));
    Artifact grandchild = store.save_artifact(art("2", child.id));

    CHECK(store.delete_artifact(child.id));
    CHECK_FALSE(store.get_artifact(child.id));
    CHECK_FALSE(store.delete_artifact(child.id));
    auto g = store.get_artifact(grandchild.id);
    REQUIRE(g);
    CHECK_FALSE(g->parent_id);
    CHECK(g->level == 2);
    CHECK(store.count_artifacts() == 2);

    // A later update recomputes the orphan's level from its (absent) parent.
    ArtifactInput touch;
    touch.data_json = "\"2b\"";
    CHECK(store.update_artifact(grandchild.id, touch)->level == 0);
}

TEST_CASE("store: artifact subtree and list paging") {
    StoreUnderTest owned;
    Store &store = *owned;
    Artifact r = store.save_artifact(art("\"r\""));
    Artifact a = store.save_artifact(art("\"a\"", r.id));
    Artifact other = store.save_artifact(art("\"other\""));
    Artifact b = store.save_artifact(art("\"b\"", r.id));
    Artifact a1 = store.save_artifact(art("\"a1\"", a.id));
    Artifact b1 = store.save_artifact(art("\"b1\"", b.id));
    Artifact a2 = store.save_artifact(art("\"a2\"", a.id));
    store.save_artifact(art("\"o1\"", other.id));

    auto sub = store.artifact_subtree(r.id);
    std::vector<std::string> ids;
    for (auto &x : sub) ids.push_back(x.id);
    CHECK(ids == std::vector<std::string>{r.id, a.id, b.id, a1.id, b1.id, a2.id});
    CHECK(sub[4].level == 2);
    CHECK(sub[4].parent_id == b.id);

    auto sub_a = store.artifact_subtree(a.id);
    REQUIRE(sub_a.size() == 3);
    CHECK(sub_a[0].id == a.id);
    CHECK(sub_a[1].id == a1.id);
    CHECK(sub_a[2].id == a2.id);
    CHECK(store.artifact_subtree(a2.id).size() == 1);
    CHECK(store.artifact_subtree("01ARZ3NDEKTSV4RRFFQ69G5FAV").empty());

    CHECK(store.count_artifacts() == 8);
    auto all = store.list_artifacts(Store::no_limit, 0);
    REQUIRE(all.size() == 8);
    CHECK(all[0].id == r.id);
    CHECK(all[2].id == other.id);
    CHECK(all[7].data_json == "\"o1\"");
    auto page = store.list_artifacts(3, 3);
    REQUIRE(page.size() == 3);
    CHECK(page[0].id == b.id);
    CHECK(page[1].id == a1.id);
    CHECK(page[2].id == b1.id);
    CHECK(store.list_artifacts(3, 6).size() == 2);
    CHECK(store.list_artifacts(3, 9).empty());
}

TEST_CASE("store (sqlite): after an fsync failed, task code reads but cannot write or commit") {
    TempDir dir;
    const std::string path = dir.file("taskhost.db");
    SqliteStore::Options o;
    o.path = path;
    SqliteStore store(o);  // the schema, in WAL mode
    auto health = std::make_shared<taskhost::store::CommitHealth>();
    auto conn = taskhost::store::sqlite::make_task_connection(path, false, true, health);
    // Only the store's Checkpointer checkpoints: its fsyncs latch.
    CHECK(json::parse(conn->query("PRAGMA wal_autocheckpoint", ""))[0]["wal_autocheckpoint"] == 0);
    CHECK(json::parse(conn->query("PRAGMA synchronous", ""))[0]["synchronous"] == 2);  // FULL
    conn->query("CREATE TABLE notes (n INTEGER)", "");
    conn->query("INSERT INTO notes VALUES (1)", "");
    conn->begin();
    conn->query("INSERT INTO notes VALUES (2)", "");
    health->latch_fsync_failure("disk I/O error");
    const auto refused = [](auto &&call) {
        try {
            call();
            return std::string("not refused");
        } catch (const StoreError &e) {
            return e.kind == StoreError::Kind::unavailable ? std::string(e.what())
                                                           : "wrong kind: " + std::string(e.what());
        }
    };
    CHECK(refused([&] { conn->commit(); }).find("fsync failed") == 0);
    CHECK_FALSE(conn->in_transaction());  // rolled back
    CHECK(refused([&] { conn->query("INSERT INTO notes VALUES (3)", ""); }).find("fsync failed") == 0);
    conn->begin();
    CHECK(refused([&] { conn->query("COMMIT", ""); }).find("fsync failed") == 0);  // read-only to SQLite
    CHECK(json::parse(conn->query("SELECT count(*) AS c FROM notes", "")) == json::parse(R"([{"c":1}])"));
    conn->rollback();
    CHECK(json::parse(conn->query("SELECT n FROM notes ORDER BY n", "")) == json::parse(R"([{"n":1}])"));
}

TEST_CASE("store (sqlite): file database persists across Store instances") {
    TempDir dir;
    const std::string path = dir.file("taskhost.db");
    Job j = make_job();
    std::string artifact_id;
    {
        SqliteStore::Options o;
        o.path = path;
        SqliteStore store(o);
        CHECK(store.url() == "sqlite:///" + std::filesystem::absolute(path).lexically_normal().string());
        CHECK(store.check());
        store.insert_job(j);
        artifact_id = store.save_artifact(art(R"({"kept":true})")).id;
        store.start_job(j.id, now_us());
        for (int i = 1; i <= 50; ++i) store.update_progress(j.id, i / 50.0, "step " + std::to_string(i));
        // No flush: the destructor must drain what is queued.
    }
    CHECK(std::filesystem::exists(path));
    {
        SqliteStore::Options o;
        o.path = path;
        SqliteStore store(o);
        auto got = store.get_job(j.id);
        REQUIRE(got);
        CHECK(got->status == JobStatus::running);
        CHECK(got->progress == 1.0);
        CHECK(got->progress_message == "step 50");
        auto a = store.get_artifact(artifact_id);
        REQUIRE(a);
        CHECK(a->data_json == R"({"kept":true})");

        // Schema version, WAL and foreign keys are in place.
        auto conn = store.task_connection();
        CHECK(json::parse(conn->query("PRAGMA user_version", ""))[0]["user_version"] == 9);
        CHECK(json::parse(conn->query("PRAGMA journal_mode", ""))[0]["journal_mode"] == "wal");
        CHECK(json::parse(conn->query("PRAGMA foreign_keys", ""))[0]["foreign_keys"] == 1);
        auto pending = store.recover("restarted", now_us());
        CHECK(pending.empty());
        CHECK(store.get_job(j.id)->status == JobStatus::failed);
    }
}

TEST_CASE("store (sqlite): a version-1 database is migrated with every job and artifact kept") {
    TempDir dir;
    const std::string path = dir.file("v1.db");
    {
        // The schema of migration 1, as a build before version 2 left it.
        sqlite3 *db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        const char *v1 = R"sql(
            PRAGMA journal_mode=WAL;
            CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, task_name TEXT NOT NULL,
                params TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL, submitted_at INTEGER, started_at INTEGER,
                finished_at INTEGER, error TEXT, error_traceback TEXT, artifact_id TEXT, progress REAL,
                progress_message TEXT NOT NULL DEFAULT '', timeout_s REAL);
            CREATE INDEX jobs_status ON jobs(status);
            CREATE TABLE artifacts (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                parent_id TEXT REFERENCES artifacts(id) ON DELETE SET NULL, level INTEGER NOT NULL DEFAULT 0,
                data TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL);
            CREATE INDEX artifacts_parent ON artifacts(parent_id);
            INSERT INTO jobs (id, task_name, params, status, submitted_at, error, progress, progress_message, timeout_s)
                VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FA1', 'add', '{"a":1}', 'completed', 1, NULL, 1.0, 'done', 30),
                       ('01ARZ3NDEKTSV4RRFFQ69G5FA2', 'add', '{}', 'failed', 2, 'boom', NULL, '', NULL),
                       ('01ARZ3NDEKTSV4RRFFQ69G5FA3', 'greet', '{}', 'pending', 3, NULL, NULL, '', NULL);
            INSERT INTO artifacts (id, parent_id, level, data, created_at, updated_at)
                VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FB1', NULL, 0, '"root"', 1, 1),
                       ('01ARZ3NDEKTSV4RRFFQ69G5FB2', '01ARZ3NDEKTSV4RRFFQ69G5FB1', 1, '"child"', 2, 2);
            PRAGMA user_version=1;
        )sql";
        char *err = nullptr;
        const int rc = sqlite3_exec(db, v1, nullptr, nullptr, &err);
        INFO((err ? err : ""));
        sqlite3_free(err);
        sqlite3_close(db);
        REQUIRE(rc == SQLITE_OK);
    }
    SqliteStore::Options o;
    o.path = path;
    SqliteStore store(o);
    auto conn = store.task_connection();
    CHECK(json::parse(conn->query("PRAGMA user_version", ""))[0]["user_version"] == 9);

    auto jobs = store.list_jobs(std::nullopt, Store::no_limit, 0);
    REQUIRE(jobs.size() == 3);
    CHECK(jobs[0].id == "01ARZ3NDEKTSV4RRFFQ69G5FA3");  // newest first
    CHECK(jobs[2].id == "01ARZ3NDEKTSV4RRFFQ69G5FA1");
    CHECK(jobs[2].params_json == R"({"a":1})");
    CHECK(jobs[2].progress == doctest::Approx(1.0));
    CHECK(jobs[2].progress_message == "done");
    CHECK(jobs[2].timeout_s == doctest::Approx(30));
    CHECK(jobs[1].error == "boom");
    CHECK(store.count_jobs(JobStatus::pending) == 1);
    auto pending = store.recover("restarted", now_us());
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].task_name == "greet");

    auto tree = store.artifact_subtree("01ARZ3NDEKTSV4RRFFQ69G5FB1");
    REQUIRE(tree.size() == 2);
    CHECK(tree[1].level == 1);
    // Deleting the parent still orphans the child through the (now partial) index.
    CHECK(store.delete_artifact("01ARZ3NDEKTSV4RRFFQ69G5FB1"));
    auto child = store.get_artifact("01ARZ3NDEKTSV4RRFFQ69G5FB2");
    REQUIRE(child);
    CHECK_FALSE(child->parent_id);

    // Jobs are keyed by id alone now, and the parent index leaves roots out.
    auto plan = json::parse(conn->query("SELECT sql FROM sqlite_schema WHERE name = ?1", R"(["jobs"])"));
    CHECK(plan[0]["sql"].get<std::string>().find("WITHOUT ROWID") != std::string::npos);
    auto index = json::parse(conn->query("SELECT sql FROM sqlite_schema WHERE name = ?1", R"(["artifacts_parent"])"));
    CHECK(index[0]["sql"].get<std::string>().find("WHERE parent_id IS NOT NULL") != std::string::npos);
}

// Writes `count` jobs with their result artifacts, each in one write, and
// waits until all are durable.
void write_finished_jobs(Store &store, int count) {
    std::atomic<int> durable{0};
    std::mutex mu;
    std::condition_variable cv;
    for (int i = 0; i < count; ++i) {
        Job j = make_job();
        Store::JobEnd end;
        end.finished_at = now_us();
        Artifact result;
        result.id = new_ulid_string();
        result.data_json = R"({"task_name":"hello","params":{},"result":{"message":"Hello!"},"error":null})";
        end.result_artifact = result;
        end.insert_first = j;
        store.finish_job(j.id, std::move(end), [&] {
            std::lock_guard lock(mu);
            ++durable;
            cv.notify_all();
        });
    }
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return durable.load() == count; }));
}

uintmax_t wal_bytes(const std::string &db) {
    std::error_code ec;
    auto size = std::filesystem::file_size(db + "-wal", ec);
    return ec ? 0 : size;
}

constexpr uintmax_t kFrameBytes = 4096 + 24;  // default page size + WAL frame header

TEST_CASE("store (sqlite): a background connection checkpoints the WAL, which stays bounded" *
          doctest::test_suite("concurrency")) {
    TempDir dir;
    SqliteStore::Options o;
    o.path = dir.file("ckpt.db");
    o.checkpoint_pages = 20;
    o.wal_cap_pages = 400;
    SqliteStore store(o);
    for (int round = 0; round < 10; ++round) write_finished_jobs(store, 300);
    // The checkpointer was asked long ago; wait (bounded) until it has run.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (store.write_stats().checkpoints == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(store.write_stats().checkpoints >= 1);
    // One commit can add what a whole batch touched beyond the cap.
    CHECK(wal_bytes(o.path) <= (o.wal_cap_pages + 600) * kFrameBytes);
    CHECK(store.count_jobs(JobStatus::completed) == 3000);
    CHECK(store.count_artifacts() == 3000);
}

TEST_CASE("store (sqlite): the writer checkpoints itself at wal_cap_pages") {
    TempDir dir;
    SqliteStore::Options o;
    o.path = dir.file("cap.db");
    o.background_checkpoints = false;
    o.wal_cap_pages = 200;
    SqliteStore store(o);
    for (int round = 0; round < 10; ++round) write_finished_jobs(store, 300);
    const auto stats = store.write_stats();
    CHECK(stats.checkpoints == 0);
    CHECK(stats.writer_checkpoints >= 1);
    CHECK(wal_bytes(o.path) <= (o.wal_cap_pages + 600) * kFrameBytes);
    CHECK(store.count_jobs(JobStatus::completed) == 3000);
}

TEST_CASE("store (sqlite): opening a missing directory fails with StoreError") {
    TempDir dir;
    SqliteStore::Options o;
    o.path = dir.file("no/such/dir/x.db");
    CHECK_THROWS_AS(SqliteStore{o}, StoreError);
}

TEST_CASE("store (sqlite): memory database is shared by writer, readers and task connections") {
    SqliteStore store(memory_options());
    CHECK(store.url() == "sqlite://:memory:");
    CHECK(store.check());

    Job j = make_job();
    store.insert_job(j);                  // write connection
    CHECK(store.get_job(j.id));           // pool connection
    auto conn = store.task_connection();  // a third connection
    auto rows = json::parse(conn->query("SELECT id, status FROM jobs WHERE id = ?", json::array({j.id}).dump()));
    REQUIRE(rows.size() == 1);
    CHECK(rows[0]["status"] == "pending");
    conn->query("CREATE TABLE notes (n TEXT)", "");
    conn->query("INSERT INTO notes VALUES (?)", R"(["hello"])");
    auto conn2 = store.task_connection();
    CHECK(json::parse(conn2->query("SELECT n FROM notes", ""))[0]["n"] == "hello");

    // Another memory store is a different database.
    SqliteStore other(memory_options());
    CHECK_FALSE(other.get_job(j.id));
    CHECK(other.count_jobs(std::nullopt) == 0);

    // Readers beside the writer: every read succeeds and counts only grow.
    std::atomic<bool> stop{false};
    std::atomic<int> read_errors{0}, reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 4; ++r)
        readers.emplace_back([&] {
            size_t last = 0;
            while (!stop) {
                try {
                    const size_t n = store.count_jobs(std::nullopt);
                    if (n < last) ++read_errors;
                    last = n;
                    store.list_jobs(std::nullopt, 5, 0);
                    ++reads;
                } catch (const StoreError &) {
                    ++read_errors;
                }
            }
        });
    std::vector<std::thread> writers;
    for (int w = 0; w < 4; ++w)
        writers.emplace_back([&] {
            for (int i = 0; i < 250; ++i) {
                Job k = make_job();
                store.insert_job(k);
            }
        });
    for (auto &t : writers) t.join();
    // Let the readers observe the final state at least once.
    const int seen = reads.load();
    while (reads.load() < seen + 8) std::this_thread::yield();
    stop = true;
    for (auto &t : readers) t.join();
    CHECK(read_errors == 0);
    CHECK(store.count_jobs(std::nullopt) == 1001);
}

namespace {
void concurrent_inserts(Store &store) {
    constexpr int kThreads = 16, kPer = 300;
    std::vector<std::vector<std::string>> ids(kThreads);
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPer; ++i) {
                Job j = make_job("t" + std::to_string(t));
                try {
                    store.insert_job(j);
                    ids[static_cast<size_t>(t)].push_back(j.id);
                    // Durable on return: visible to a reader at once.
                    if (i % 50 == 0 && !store.get_job(j.id)) ++errors;
                } catch (const StoreError &) {
                    ++errors;
                }
            }
        });
    for (auto &th : threads) th.join();
    CHECK(errors == 0);
    CHECK(store.count_jobs(std::nullopt) == static_cast<size_t>(kThreads * kPer));
    std::set<std::string> stored;
    for (auto &j : store.list_jobs(std::nullopt, Store::no_limit, 0)) stored.insert(j.id);
    for (auto &v : ids)
        for (auto &id : v) REQUIRE(stored.count(id) == 1);
}
}  // namespace

TEST_CASE("store (sqlite): 16 threads insert jobs concurrently (file)" * doctest::test_suite("concurrency")) {
    TempDir dir;
    SqliteStore::Options o;
    o.path = dir.file("c.db");
    SqliteStore store(o);
    concurrent_inserts(store);
}

TEST_CASE("store: 16 threads insert jobs concurrently (small batches)" * doctest::test_suite("concurrency")) {
    StoreUnderTestOptions o;
    o.max_batch = 4;
    o.read_connections = 1;
    StoreUnderTest owned(o);
    Store &store = *owned;
    concurrent_inserts(store);
}

TEST_CASE("store (sqlite): TaskConnection query, binds, transactions, errors") {
    SqliteStore store(memory_options());
    auto conn = store.task_connection();
    CHECK(conn->query("CREATE TABLE t (id INTEGER PRIMARY KEY, b INTEGER, r REAL, s TEXT, j TEXT, x BLOB)", "") ==
          "[]");
    conn->query("INSERT INTO t (b, r, s, j, x) VALUES (?, ?, ?, ?, ?)", R"([true, 1.5, "héllo", {"k":[1,2]}, null])");
    conn->query("INSERT INTO t (b, r, s, j, x) VALUES (?1, ?2, ?3, ?4, X'00FF10')", R"([false, -2, "b", [3]])");
    auto rows = json::parse(conn->query("SELECT * FROM t ORDER BY id", "[]"));
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["id"] == 1);
    CHECK(rows[0]["b"] == 1);
    CHECK(rows[0]["r"] == 1.5);
    CHECK(rows[0]["s"] == "héllo");
    CHECK(json::parse(rows[0]["j"].get<std::string>()) == json{{"k", {1, 2}}});
    CHECK(rows[0]["x"].is_null());
    CHECK(rows[1]["b"] == 0);
    CHECK(rows[1]["r"] == -2);  // REAL column affinity keeps it a number
    CHECK(rows[1]["j"] == "[3]");
    CHECK(rows[1]["x"] == "AP8Q");  // base64 of 00 FF 10

    auto filtered = json::parse(conn->query("SELECT s FROM t WHERE b = ? AND r > ?", "[1, 0]"));
    REQUIRE(filtered.size() == 1);
    CHECK(filtered[0]["s"] == "héllo");
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM t WHERE s = ?", R"(["nope"])"))[0]["n"] == 0);

    // begin / rollback / commit.
    CHECK_FALSE(conn->in_transaction());
    conn->begin();
    CHECK(conn->in_transaction());
    conn->query("INSERT INTO t (s) VALUES ('gone')", "");
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 3);
    conn->rollback();
    CHECK_FALSE(conn->in_transaction());
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 2);
    conn->begin();
    conn->query("INSERT INTO t (s) VALUES ('kept')", "");
    conn->commit();
    CHECK_FALSE(conn->in_transaction());
    auto other = store.task_connection();
    CHECK(json::parse(other->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 3);
    conn->rollback();  // nothing open: a no-op

    // The store's own writes go on while a task connection is idle.
    Job j = make_job();
    store.insert_job(j);
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM jobs", ""))[0]["n"] == 1);

    // Errors are StoreError(invalid) with SQLite's message.
    auto expect_invalid = [&](const std::string &sql, const std::string &params, const std::string &needle) {
        try {
            conn->query(sql, params);
            FAIL("expected an error for: " << sql);
        } catch (const StoreError &e) {
            CHECK(e.kind == StoreError::Kind::invalid);
            CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
        }
    };
    expect_invalid("SELEC 1", "", "syntax error");
    expect_invalid("SELECT * FROM missing_table", "", "no such table");
    expect_invalid("SELECT 1; SELECT 2", "", "one SQL statement");
    expect_invalid("SELECT ?", "", "parameter");
    expect_invalid("SELECT ?", "[1, 2]", "parameter");
    expect_invalid("SELECT ?", R"({"a":1})", "JSON array");
    expect_invalid("INSERT INTO t (id) VALUES (1)", "", "UNIQUE");
    CHECK_THROWS_AS(conn->commit(), StoreError);  // no transaction open
    // A trailing semicolon or comment is still one statement.
    CHECK(json::parse(conn->query("SELECT 7 AS n; -- done", ""))[0]["n"] == 7);
    CHECK(conn->query("-- nothing", "") == "[]");
    CHECK_FALSE(conn->in_transaction());
}

TEST_CASE("store: a task transaction left open is rolled back when the connection goes") {
    StoreUnderTest owned;
    Store &store = *owned;
    {
        auto conn = store.task_connection();
        conn->query("CREATE TABLE t (n INTEGER)", "");
        conn->begin();
        conn->query("INSERT INTO t VALUES (1)", "");
    }
    // The writer is not blocked by an abandoned write lock.
    Job j = make_job();
    store.insert_job(j);
    auto conn = store.task_connection();
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 0);
}

TEST_CASE("store: a blocking write from on_durable is refused instead of deadlocking") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    std::promise<std::string> outcome;
    end_job(store, j.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, std::nullopt, [&] {
        try {
            store.flush();
            outcome.set_value("no error");
        } catch (const StoreError &e) {
            outcome.set_value(e.what());
        }
    });
    auto fut = outcome.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    CHECK(fut.get().find("writer thread") != std::string::npos);
    // Reads from the callback are fine (checked above); the store still works.
    Job k = make_job();
    store.insert_job(k);
    CHECK(store.get_job(k.id));
}

TEST_CASE("store: start_job commits the start and counts attempts; only a pending job starts") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job j = make_job();
    store.insert_job(j);
    CHECK(store.start_job(j.id, 1234));  // durable when it returns: no flush needed
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->status == JobStatus::running);
    CHECK(got->started_at == 1234);
    CHECK(got->attempts == 1);
    CHECK_FALSE(store.start_job(j.id, 5678));  // running already
    CHECK(store.get_job(j.id)->attempts == 1);
    CHECK_FALSE(store.start_job("01ARZ3NDEKTSV4RRFFQ69G5FAV", 1));  // no such job
}

TEST_CASE("store: fail_jobs fails the jobs not ended, each with its own error") {
    StoreUnderTest owned;
    Store &store = *owned;
    Job pending = make_job(), running = make_job(), done = make_job();
    for (Job *j : {&pending, &running, &done}) store.insert_job(*j);
    REQUIRE(store.start_job(running.id, now_us()));
    end_job(store, done.id, JobStatus::completed, now_us(), std::nullopt, std::nullopt, std::nullopt);
    store.flush();
    store.fail_jobs({{pending.id, "crashed first"}, {running.id, "crashed second"}, {done.id, "too late"}}, 42);
    CHECK(store.get_job(pending.id)->status == JobStatus::failed);
    CHECK(*store.get_job(pending.id)->error == "crashed first");
    CHECK(*store.get_job(running.id)->error == "crashed second");
    CHECK(store.get_job(running.id)->finished_at == 42);
    CHECK(store.get_job(done.id)->status == JobStatus::completed);
    CHECK_FALSE(store.get_job(done.id)->error);
}

TEST_CASE("store: plugin faults add up per version and quarantine at their threshold") {
    StoreUnderTest owned;
    Store &store = *owned;
    const model::QuarantineThresholds thresholds;  // crashes 2, load failures 1, hangs 2
    model::PluginFaults v1;
    v1.hash = std::string(64, 'a');
    v1.file = "bad.so";
    v1.name = "bad";
    v1.version = "1.0.0";
    v1.tasks_json = R"(["boom","fine"])";
    auto first = store.record_plugin_fault(v1, model::PluginFaultKind::crash, "SIGSEGV in boom", thresholds, 10);
    CHECK(first.crashes == 1);
    CHECK(first.quarantined_at == 0);
    CHECK(store.quarantined_plugins().empty());

    model::PluginFaults again = v1;
    again.tasks_json = "[]";  // unknown this time: the known names stay
    auto second = store.record_plugin_fault(again, model::PluginFaultKind::crash, "SIGABRT in boom", thresholds, 20);
    CHECK(second.crashes == 2);
    CHECK(second.quarantined_at == 20);
    CHECK(second.last_reason == "SIGABRT in boom");
    CHECK(second.tasks_json == R"(["boom","fine"])");
    auto listed = store.quarantined_plugins();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].hash == v1.hash);
    CHECK(listed[0].file == "bad.so");

    // Another version of the same file is counted on its own; one failed
    // load quarantines it at once.
    model::PluginFaults v2 = v1;
    v2.hash = std::string(64, 'b');
    auto load = store.record_plugin_fault(v2, model::PluginFaultKind::load_failure, "probe: SIGSEGV", thresholds, 30);
    CHECK(load.crashes == 0);
    CHECK(load.load_failures == 1);
    CHECK(load.quarantined_at == 30);
    CHECK(store.quarantined_plugins().size() == 2);
}
