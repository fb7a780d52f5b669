// Unit tests of the job protocol (jobs::JobManager) through its seams: a
// store (SQLite in memory), a registry holding tasks written here against
// the C ABI, and an executor (the in-process one, or a fake that admits as
// told).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "exec/in_process.hpp"
#include "jobs/job_manager.hpp"
#include "metrics/metrics.hpp"
#include "registry/registry.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

using namespace taskhost;
using nlohmann::json;

namespace job_manager_test {

// ---- tasks, as a plugin would declare them ---------------------------------------

// The thread of the last echo run, and the jobs that ran it.
std::atomic<std::thread::id> last_thread;
std::mutex ran_mu;
std::set<std::string> ran;

th_status echo_invoke(const th_host_api *host, th_call *call, const char *params, size_t len) {
    last_thread.store(std::this_thread::get_id());
    {
        std::lock_guard lock(ran_mu);
        ran.insert(host->job_id(call));
    }
    const std::string result = "{\"echo\":" + std::string(params, len) + "}";
    host->set_result(call, result.data(), result.size());
    return TH_OK;
}

th_status refuse_odd(const char *params, size_t len, th_sink *err) {
    if (json::parse(std::string(params, len)).value("n", 0) % 2 == 0) return TH_OK;
    const std::string why = "n must be even";
    err->write(err->opaque, why.data(), why.size());
    return TH_INVALID;
}

// A task that runs until the test opens the gate (or its job is cancelled).
struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int inside = 0;
    void wait_inside(int n) {
        std::unique_lock lock(mu);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return inside >= n; });
    }
    void release() {
        std::lock_guard lock(mu);
        open = true;
        cv.notify_all();
    }
} *gate = nullptr;

th_status gated_invoke(const th_host_api *host, th_call *call, const char *, size_t) {
    last_thread.store(std::this_thread::get_id());
    std::unique_lock lock(gate->mu);
    ++gate->inside;
    gate->cv.notify_all();
    while (!gate->open && !host->is_cancelled(call)) gate->cv.wait_for(lock, std::chrono::milliseconds(5));
    host->set_result(call, "null", 4);
    return TH_OK;
}

// Schedules the echo task from inside a job, as the SDK's Scheduler does.
std::string scheduled_child;
th_status parent_invoke(const th_host_api *host, th_call *call, const char *, size_t) {
    char child[27] = {};
    std::string err;
    th_sink sink{&err, [](void *o, const char *d, size_t n) { static_cast<std::string *>(o)->append(d, n); }};
    if (host->schedule(call, "echo", "{\"from\":\"parent\"}", child, &sink) != TH_OK) {
        host->set_error(call, "ScheduleError", err.c_str(), "");
        return TH_ERROR;
    }
    scheduled_child = child;
    const std::string result = "{\"child\":\"" + scheduled_child + "\"}";
    host->set_result(call, result.data(), result.size());
    return TH_OK;
}

th_task_desc describe(const char *name, decltype(th_task_desc::invoke) invoke,
                      decltype(th_task_desc::validate) validate = nullptr) {
    th_task_desc d{};
    d.struct_size = sizeof d;
    d.name = name;
    d.invoke = invoke;
    d.validate = validate;
    return d;
}

const th_task_desc kEcho = describe("echo", echo_invoke);
const th_task_desc kEven = describe("even", echo_invoke, refuse_odd);
const th_task_desc kGated = describe("gated", gated_invoke);
const th_task_desc kParent = describe("parent", parent_invoke);

// ---- the seams ------------------------------------------------------------------

// A plugin generation offering the tasks above.
std::shared_ptr<registry::PluginInstance> plugin(uint64_t generation) {
    auto p = std::make_shared<registry::PluginInstance>();
    p->file = "test.so";
    p->name = "test";
    p->version = "1.0.0";
    p->generation_number = generation;
    return p;
}

std::shared_ptr<const registry::Snapshot> snapshot_of(const std::shared_ptr<registry::PluginInstance> &p,
                                                      uint64_t version) {
    auto s = std::make_shared<registry::Snapshot>();
    s->version = version;
    for (const th_task_desc *d : {&kEcho, &kEven, &kGated, &kParent}) {
        auto t = std::make_shared<registry::Task>();
        t->name = d->name;
        t->desc = d;
        t->has_validate = d->validate != nullptr;
        t->plugin = p;
        s->tasks.emplace(t->name, std::move(t));
    }
    return s;
}

// The in-process executor, counting where params were checked.
struct CountingExecutor final : exec::InProcessExecutor {
    using InProcessExecutor::InProcessExecutor;
    std::atomic<int> validated{0}, checked_in_run{0};
    std::function<void(const std::string &job_id)> on_check_in_run;  // runs before such a check
    Result<void> validate(const exec::Target &target, std::string_view params) override {
        ++validated;
        return InProcessExecutor::validate(target, params);
    }
    model::TaskOutcome invoke(const exec::Target &target, const std::string &job_id, std::string_view params,
                              exec::JobContext &job, exec::ParamsCheck check) override {
        if (check == exec::ParamsCheck::first) {
            ++checked_in_run;
            if (on_check_in_run) on_check_in_run(job_id);
        }
        return InProcessExecutor::invoke(target, job_id, params, job, check);
    }
};

struct Host {
    explicit Host(exec::InProcessExecutor::Options options = {2, 100}) : executor(store, options) {
        registry.publish(snapshot_of(generation1, 1));
        jobs.start();
    }
    std::shared_ptr<const registry::Task> task(std::string_view name) { return registry.snapshot()->find(name); }
    model::Job wait_end(const std::string &id) {
        auto view = jobs.wait_terminal(id, deadline_after(10));
        REQUIRE(view);
        REQUIRE(model::is_terminal(view->record.status));
        return view->record;
    }

    store::SqliteStore store{store::SqliteStore::Options{}};
    registry::Registry registry;
    metrics::Metrics metrics;
    std::shared_ptr<registry::PluginInstance> generation1 = plugin(1);
    CountingExecutor executor;
    jobs::JobManager jobs{store, registry, executor, metrics};
};

// An executor that admits as the test says and runs work on the caller.
class FakeExecutor final : public exec::Executor {
public:
    Error refuse;
    bool refusing = false;
    int dispatched = 0;

    Result<exec::Admission> admit(bool) override {
        if (refusing) return refuse;
        return grant(exec::Admission::Where::queue);
    }
    void dispatch(exec::Admission admission, std::shared_ptr<exec::Work> work, int64_t) override {
        take(admission);
        ++dispatched;
        work->run();
    }
    void requeue(std::shared_ptr<exec::Work> work, int64_t) override { work->run(); }
    Result<void> validate(const exec::Target &, std::string_view) override { return {}; }
    model::TaskOutcome invoke(const exec::Target &, const std::string &, std::string_view params, exec::JobContext &,
                              exec::ParamsCheck) override {
        model::TaskOutcome out;
        out.has_result = true;
        out.result_json = params;
        return out;
    }
    Result<void> run_init(const th_plugin_desc &, const std::string &, const std::string &) override { return {}; }
    WriteOff write_off(const exec::Work &) override { return WriteOff::not_running; }
    void start() override {}
    void stop() override {}
    Load load() const override { return {}; }

private:
    void release(exec::Admission::Where) override {}
};

}  // namespace job_manager_test

using namespace job_manager_test;

TEST_SUITE("job manager") {

TEST_CASE("execute with a wait: the job ends within it, with its artifact, stored") {
    Host h;
    auto executed = h.jobs.execute(h.task("echo"), R"({"a":1})", {}, 5.0);
    REQUIRE(executed);
    REQUIRE(executed->finished);
    const jobs::JobView &job = *executed->finished;
    CHECK(job.record.id == executed->job_id);
    CHECK(job.record.status == model::JobStatus::completed);
    REQUIRE(job.record.artifact_id);
    const json artifact = json::parse(job.artifact_json);
    CHECK(artifact["id"] == *job.record.artifact_id);
    CHECK(artifact["data"]["result"] == json{{"echo", {{"a", 1}}}});
    // Durable: the store has the end and the artifact.
    auto stored = h.store.get_job(executed->job_id);
    REQUIRE(stored);
    CHECK(stored->status == model::JobStatus::completed);
    CHECK(h.store.get_artifact(*job.record.artifact_id));
}

TEST_CASE("execute without a wait: stored before it returns, then runs") {
    Host h;
    auto executed = h.jobs.execute(h.task("echo"), "{}", {}, std::nullopt);
    REQUIRE(executed);
    CHECK_FALSE(executed->finished);
    CHECK(h.store.get_job(executed->job_id));  // durable before anyone is told of it
    CHECK(h.wait_end(executed->job_id).status == model::JobStatus::completed);
}

TEST_CASE("params the task refuses: invalid, naming the task; no job") {
    Host h;
    auto refused = h.jobs.execute(h.task("even"), R"({"n":3})", {}, std::nullopt);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::invalid);
    CHECK(refused.error().message == "Invalid params for task 'even': n must be even");
    CHECK(h.store.count_jobs(std::nullopt) == 0);
    CHECK(h.metrics.task("even").rejected_invalid.load() == 1);
    CHECK(h.jobs.execute(h.task("even"), R"({"n":4})", {}, 5.0));
}

TEST_CASE("a quick job's params are checked in the call that runs it; refused, it leaves no trace") {
    Host h;
    auto &counters = h.metrics.task("even");
    // Not known to be quick yet: checked first (validate), then run.
    REQUIRE(h.jobs.execute(h.task("even"), R"({"n":2})", {}, 5.0));
    CHECK(h.executor.validated.load() == 1);
    CHECK(h.executor.checked_in_run.load() == 0);
    // Quick now: checked in the run, in one call.
    auto ran = h.jobs.execute(h.task("even"), R"({"n":4})", {}, 5.0);
    REQUIRE(ran);
    REQUIRE(ran->finished);
    CHECK(ran->finished->record.status == model::JobStatus::completed);
    CHECK(h.executor.validated.load() == 1);
    CHECK(h.executor.checked_in_run.load() == 1);
    // Refused there: the same answer as a check before, and no job.
    // (With a wait: without one, "quick" is 200 us, which a sanitizer build may miss.)
    for (int i = 0; i < 2; ++i) {
        auto refused = h.jobs.execute(h.task("even"), R"({"n":3})", {}, 5.0);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().kind == ErrorKind::invalid);
        CHECK(refused.error().message == "Invalid params for task 'even': n must be even");
    }
    CHECK(h.executor.checked_in_run.load() == 3);
    CHECK(h.executor.validated.load() == 1);
    CHECK(h.store.count_jobs(std::nullopt) == 2);
    CHECK(counters.rejected_invalid.load() == 2);
    CHECK(counters.submitted.load() == 2);
    CHECK(h.jobs.load().running == 0);
}

TEST_CASE("a quick job canceled by its id while its params are checked stays a job: it ends canceled") {
    Host h;
    REQUIRE(h.jobs.execute(h.task("even"), R"({"n":2})", {}, 5.0));  // known to be quick now
    // Its id shows (GET /api/v1/system lists a busy worker's job) while it runs.
    h.executor.on_check_in_run = [&](const std::string &id) { CHECK(h.jobs.cancel(id)); };
    auto executed = h.jobs.execute(h.task("even"), R"({"n":3})", {}, 5.0);
    h.executor.on_check_in_run = nullptr;
    REQUIRE(executed);
    REQUIRE(executed->finished);
    CHECK(executed->finished->record.status == model::JobStatus::canceled);
    auto &counters = h.metrics.task("even");
    CHECK(counters.submitted.load() == 2);
    CHECK(counters.rejected_invalid.load() == 0);
    CHECK(counters.finished[static_cast<size_t>(metrics::Metrics::End::canceled)].load() == 1);
    CHECK(h.store.count_jobs(std::nullopt) == 2);
}

TEST_CASE("a full queue: overloaded, counted, nothing stored") {
    Gate g;
    gate = &g;
    Host h({1, 1});
    auto running = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);  // takes the one worker
    REQUIRE(running);
    g.wait_inside(1);
    auto queued = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);  // takes the one queue place
    REQUIRE(queued);
    auto refused = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::overloaded);
    CHECK(refused.error().message == "The job queue is full (1 jobs waiting); retry later");
    CHECK(h.metrics.task("gated").rejected_queue_full.load() == 1);
    CHECK(h.store.count_jobs(std::nullopt) == 2);
    g.release();
    CHECK(h.wait_end(running->job_id).status == model::JobStatus::completed);
    CHECK(h.wait_end(queued->job_id).status == model::JobStatus::completed);
    gate = nullptr;
}

TEST_CASE("cancel: a pending job at once, a running one on request, then conflict; unknown is not_found") {
    Gate g;
    gate = &g;
    Host h({1, 10});
    auto running = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);
    REQUIRE(running);
    g.wait_inside(1);
    auto pending = h.jobs.execute(h.task("echo"), "{}", {}, std::nullopt);
    REQUIRE(pending);

    auto canceled = h.jobs.cancel(pending->job_id);
    REQUIRE(canceled);
    CHECK(canceled->done);
    CHECK(canceled->job.record.status == model::JobStatus::canceled);
    CHECK(h.store.get_job(pending->job_id)->status == model::JobStatus::canceled);

    auto requested = h.jobs.cancel(running->job_id);
    REQUIRE(requested);
    CHECK_FALSE(requested->done);
    CHECK(requested->job.cancel_requested);
    CHECK(h.wait_end(running->job_id).status == model::JobStatus::canceled);  // the task saw is_cancelled

    auto again = h.jobs.cancel(running->job_id);
    REQUIRE_FALSE(again);
    CHECK(again.error().kind == ErrorKind::conflict);
    CHECK(again.error().message == "Job " + running->job_id + " has already finished (status canceled)");
    auto unknown = h.jobs.cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().kind == ErrorKind::not_found);
    gate = nullptr;
}

TEST_CASE("remove: gone from reads and lists; a second remove is not_found") {
    Host h;
    auto executed = h.jobs.execute(h.task("echo"), "{}", {}, 5.0);
    REQUIRE(executed);
    REQUIRE(h.jobs.remove(executed->job_id));
    CHECK_FALSE(h.jobs.get(executed->job_id));
    CHECK(h.jobs.list(std::nullopt, 10, 0).empty());
    auto again = h.jobs.remove(executed->job_id);
    REQUIRE_FALSE(again);
    CHECK(again.error().kind == ErrorKind::not_found);
}

TEST_CASE("list: newest first, committed writes only, cancel_requested merged") {
    Host h;
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(h.jobs.execute(h.task("echo"), "{}", {}, 5.0)->job_id);
    auto listed = h.jobs.list(std::nullopt, 10, 0);
    REQUIRE(listed.size() == 3);
    CHECK(listed[0].record.id == ids[2]);
    CHECK(listed[2].record.id == ids[0]);
    CHECK(h.jobs.count(model::JobStatus::completed) == 3);
}

TEST_CASE("quick tasks run on the submitting thread; the statistics survive a reload of other code") {
    Host h;
    // The first run goes to a worker: nothing is known about the task yet.
    REQUIRE(h.jobs.execute(h.task("echo"), "{}", {}, 5.0));
    CHECK(last_thread.load() != std::this_thread::get_id());
    REQUIRE(h.jobs.execute(h.task("echo"), "{}", {}, 5.0));
    CHECK(last_thread.load() == std::this_thread::get_id());

    // A reload publishes new Task objects for the same generation: still quick.
    h.registry.publish(snapshot_of(h.generation1, 2));
    REQUIRE(h.jobs.execute(h.task("echo"), "{}", {}, 5.0));
    CHECK(last_thread.load() == std::this_thread::get_id());

    // A new generation of the plugin is other code: a worker runs it first.
    h.registry.publish(snapshot_of(plugin(2), 3));
    REQUIRE(h.jobs.execute(h.task("echo"), "{}", {}, 5.0));
    CHECK(last_thread.load() != std::this_thread::get_id());
}

TEST_CASE("runs cut short by a cancel do not make a task quick") {
    Gate g;
    gate = &g;
    Host h;
    // Each run ends as soon as it is canceled: a few milliseconds, which
    // would pass for quick under a 5 s wait.
    for (int i = 1; i <= 3; ++i) {
        auto running = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);
        REQUIRE(running);
        g.wait_inside(i);
        REQUIRE(h.jobs.cancel(running->job_id));
        CHECK(h.wait_end(running->job_id).status == model::JobStatus::canceled);
    }
    g.release();
    auto waited = h.jobs.execute(h.task("gated"), "{}", {}, 5.0);
    REQUIRE(waited);
    REQUIRE(waited->finished);
    CHECK(last_thread.load() != std::this_thread::get_id());  // still unknown: a worker ran it
    gate = nullptr;
}

TEST_CASE("a job scheduled by a task is queued and runs, even when its task is quick") {
    Host h;
    // Make echo known to be quick, so that a submitter would run it itself.
    for (int i = 0; i < 3; ++i) REQUIRE(h.jobs.execute(h.task("echo"), "{}", {}, 5.0));
    auto parent = h.jobs.execute(h.task("parent"), "{}", {}, 5.0);
    REQUIRE(parent);
    REQUIRE(parent->finished);
    CHECK(parent->finished->record.status == model::JobStatus::completed);
    REQUIRE(scheduled_child.size() == 26);
    const model::Job child = h.wait_end(scheduled_child);
    CHECK(child.status == model::JobStatus::completed);
    CHECK(child.params_json == R"({"from":"parent"})");
}

TEST_CASE("jobs hold their plugin generation while they may call its code") {
    Gate g;
    gate = &g;
    Host h({1, 10});
    auto running = h.jobs.execute(h.task("gated"), "{}", {}, std::nullopt);
    auto queued = h.jobs.execute(h.task("echo"), "{}", {}, std::nullopt);
    REQUIRE(running);
    REQUIRE(queued);
    g.wait_inside(1);
    CHECK(h.generation1->in_flight.load() == 2);
    REQUIRE(h.jobs.remove(queued->job_id));  // a pending job that will never run lets go at once
    CHECK(h.generation1->in_flight.load() == 1);
    g.release();
    h.wait_end(running->job_id);
    CHECK(h.generation1->in_flight.load() == 0);
    gate = nullptr;
}

TEST_CASE("recover: running jobs of a crash fail, pending ones run again") {
    store::SqliteStore store{store::SqliteStore::Options{}};
    model::Job was_running, was_pending;
    for (auto *j : {&was_running, &was_pending}) {
        j->id = new_ulid_string();
        j->task_name = "echo";
        j->submitted_at = now_us();
        store.insert_job(*j);
    }
    REQUIRE(store.start_job(was_running.id, now_us()));
    store.flush();

    registry::Registry registry;
    registry.publish(snapshot_of(plugin(1), 1));
    metrics::Metrics metrics;
    exec::InProcessExecutor executor(store, {1, 10});
    jobs::JobManager jobs(store, registry, executor, metrics);
    CHECK(jobs.recover() == 1);
    jobs.start();
    auto ended = jobs.wait_terminal(was_pending.id, deadline_after(10));
    REQUIRE(ended);
    CHECK(ended->record.status == model::JobStatus::completed);
    auto failed = store.get_job(was_running.id);
    REQUIRE(failed);
    CHECK(failed->status == model::JobStatus::failed);
    CHECK(*failed->error == "the host stopped while this job was running");
}

TEST_CASE("an executor that refuses: the reason, and nothing stored or counted as submitted") {
    store::SqliteStore store{store::SqliteStore::Options{}};
    registry::Registry registry;
    registry.publish(snapshot_of(plugin(1), 1));
    metrics::Metrics metrics;
    FakeExecutor executor;
    jobs::JobManager jobs(store, registry, executor, metrics);
    jobs.start();

    executor.refusing = true;
    executor.refuse = Error{ErrorKind::unavailable, "the host is shutting down"};
    auto refused = jobs.execute(registry.snapshot()->find("echo"), "{}", {}, std::nullopt);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::unavailable);
    CHECK(refused.error().message == "The job could not be stored: the host is shutting down");
    CHECK(store.count_jobs(std::nullopt) == 0);
    CHECK(metrics.task("echo").submitted.load() == 0);

    executor.refusing = false;
    auto accepted = jobs.execute(registry.snapshot()->find("echo"), R"({"x":2})", {}, std::nullopt);
    REQUIRE(accepted);
    CHECK(executor.dispatched == 1);
    auto ended = jobs.wait_terminal(accepted->job_id, deadline_after(10));
    REQUIRE(ended);
    CHECK(ended->record.status == model::JobStatus::completed);
    CHECK(metrics.task("echo").submitted.load() == 1);
}

}  // TEST_SUITE("job manager")

TEST_CASE("a job canceled while pending never runs, however close a worker was to starting it" *
          doctest::test_suite("concurrency")) {
    Host h({2, 1000});
    std::vector<std::pair<std::string, bool>> outcomes;  // job, canceled before it ran
    for (int i = 0; i < 300; ++i) {
        auto executed = h.jobs.execute(h.task("echo"), "{}", {}, std::nullopt);
        REQUIRE(executed);
        auto canceled = h.jobs.cancel(executed->job_id);  // races the worker taking it
        outcomes.emplace_back(executed->job_id, canceled && canceled->done);
    }
    for (const auto &outcome : outcomes) {
        const std::string &id = outcome.first;
        const bool canceled_first = outcome.second;
        const model::Job job = h.wait_end(id);
        std::lock_guard lock(ran_mu);
        if (canceled_first) {
            CHECK(job.status == model::JobStatus::canceled);
            CHECK_MESSAGE(ran.count(id) == 0, "job " << id << " was canceled while pending, yet ran");
        } else {
            CHECK(ran.count(id) == 1);
        }
    }
    CHECK(h.generation1->in_flight.load() == 0);
}
