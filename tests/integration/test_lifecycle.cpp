// The job lifecycle beyond "run once, now": priorities, delayed jobs,
// idempotency keys and retries.
// Runs on SQLite (ctest integration) and on PostgreSQL (integration-postgres,
// where with_file_db() is a schema of its own).
#include <algorithm>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "test_util.hpp"

using namespace th_test;

namespace {

// POST $execute with a whole body; REQUIREs 202 and returns the job id.
std::string submit_body(httplib::Client &cli, const std::string &task, const json &body) {
    auto res = post_json(cli, "/api/v1/tasks/" + task + "/$execute", body);
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 202);
    return body_json(res)["job_id"].get<std::string>();
}

// POST $execute with an Idempotency-Key; the raw response.
httplib::Result post_keyed(httplib::Client &cli, const std::string &task, const std::string &key,
                           const std::string &body, const std::string &query = "") {
    httplib::Headers headers{{"Idempotency-Key", key}};
    return cli.Post(("/api/v1/tasks/" + task + "/$execute" + query).c_str(), headers, body, "application/json");
}

// A Service with the retry fixtures (flaky.so), on a database of its own.
ServiceOptions with_flaky() { return ServiceOptions().with_file_db().with_plugin(fixture_plugin("flaky.so")); }

// How many times a flaky task ran: its counter file.
int runs(const fs::path &counter) {
    int n = 0;
    std::ifstream(counter) >> n;
    return n;
}

}  // namespace

TEST_SUITE("lifecycle") {

TEST_CASE("priorities: with one worker, higher runs first and equal ones in submit order") {
    Service svc(ServiceOptions().with_file_db().flags({"--max-concurrency", "1"}));
    auto &cli = svc.cli();
    const std::string blocker = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, blocker, "running");
    // Queued behind the blocker, in this order: (name, priority).
    const std::vector<std::pair<std::string, int>> order = {{"a", 0}, {"b", 5}, {"c", -3}, {"d", 5}, {"e", 10}, {"f", 0}};
    std::map<std::string, std::string> ids;
    for (const auto &[name, priority] : order) {
        json body = {{"params", {{"name", name}}}};
        if (name != "a") body["priority"] = priority;  // "a" takes the default
        ids[name] = submit_body(cli, "greet_user", body);
    }
    CHECK(get_job(cli, ids["a"])["priority"] == 0);
    CHECK(get_job(cli, ids["e"])["priority"] == 10);
    CHECK(get_job(cli, ids["c"])["status"] == "pending");
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + blocker).c_str()), 204);
    std::vector<std::pair<int64_t, std::string>> started;
    for (const auto &[name, id] : ids) {
        json job = wait_job(cli, id);
        REQUIRE(job["status"] == "completed");
        started.emplace_back(iso_us(job["started_at"]), name);
    }
    std::sort(started.begin(), started.end());
    std::string seen;
    for (const auto &s : started) seen += s.second;
    CHECK(seen == "ebdafc");
}

TEST_CASE("delayed jobs: scheduled until run_at, listed as such, then run on time") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    const std::string id = submit_body(cli, "greet_user", {{"params", {{"name", "later"}}}, {"delay_s", 1.0}});
    json job = get_job(cli, id);
    INFO(job.dump());
    CHECK(job["status"] == "scheduled");
    CHECK(job["started_at"].is_null());
    const int64_t run_at = iso_us(job["run_at"]);
    const int64_t delay = run_at - iso_us(job["submitted_at"]);
    CHECK(delay >= 950'000);
    CHECK(delay <= 1'100'000);
    json scheduled = get_json(cli, "/api/v1/jobs?status_filter=scheduled");
    REQUIRE(scheduled.size() == 1);
    CHECK(scheduled[0]["id"] == id);
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=pending").empty());
    CHECK(get_json(cli, "/api/v1/system")["jobs_scheduled"] == 1);

    json done = wait_job(cli, id);
    CHECK(done["status"] == "completed");
    // Not before its time, and soon after it (the timer, a worker start).
    const int64_t late = iso_us(done["started_at"]) - run_at;
    CHECK(late >= 0);
    CHECK(late < 2'000'000);
    CHECK(get_json(cli, "/api/v1/system")["jobs_scheduled"] == 0);
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=scheduled").empty());
}

TEST_CASE("delayed jobs: run_at with an offset, a time past runs now, and the 400s") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    // A time in the past: run now.
    const std::string past = submit_body(cli, "greet_user", {{"run_at", "2020-01-01T00:00:00+02:00"}});
    json ran = wait_job(cli, past);
    CHECK(ran["status"] == "completed");
    CHECK(ran["run_at"] == "2019-12-31T22:00:00.000000Z");

    const std::string next = iso_of(wall_us() + 600'000'000);
    const std::string later = submit_body(cli, "greet_user", {{"run_at", next}, {"priority", -2}});
    json held = get_job(cli, later);
    CHECK(held["status"] == "scheduled");
    CHECK(held["run_at"] == next);
    CHECK(held["priority"] == -2);

    const std::string path = "/api/v1/tasks/greet_user/$execute";
    check_problem(post_json(cli, path, {{"priority", 11}}), 400, "priority must be an integer from -10 to 10");
    check_problem(post_json(cli, path, {{"priority", 1.5}}), 400, "priority must be an integer");
    check_problem(post_json(cli, path, {{"priority", "high"}}), 400, "priority must be an integer");
    // Not wrapped round into the range.
    check_problem(post_json(cli, path, {{"priority", 18446744073709551615ULL}}), 400, "priority must be an integer");
    check_problem(post_json(cli, path, {{"priority", -4294967295LL}}), 400, "priority must be an integer");
    // JSON Schema's integer: 5.0 is 5.
    CHECK(get_job(cli, submit_body(cli, "greet_user", {{"priority", 5.0}, {"delay_s", 600}}))["priority"] == 5);
    check_problem(post_json(cli, path, {{"run_at", "tomorrow"}}), 400, "run_at must be an RFC 3339 date-time");
    check_problem(post_json(cli, path, {{"run_at", "2026-12-04T10:00:00"}}), 400, "with a time zone");
    check_problem(post_json(cli, path, {{"run_at", 1767225600}}), 400, "run_at must be an RFC 3339");
    check_problem(post_json(cli, path, {{"run_at", iso_of(wall_us() + 400LL * 86400 * 1'000'000)}}), 400,
                  "at most a year from now");
    check_problem(post_json(cli, path, {{"delay_s", -1}}), 400, "delay_s must be a number of seconds");
    check_problem(post_json(cli, path, {{"delay_s", "5"}}), 400, "delay_s must be a number of seconds");
    check_problem(post_json(cli, path, {{"delay_s", 5}, {"run_at", next}}), 400, "run_at or delay_s, not both");
    CHECK(get_json(cli, "/api/v1/jobs").size() == 3);  // nothing refused was stored
}

TEST_CASE("delayed jobs: cancel keeps one from ever running; delete too") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    const std::string canceled = submit_body(cli, "greet_user", {{"delay_s", 0.5}});
    const std::string deleted = submit_body(cli, "greet_user", {{"delay_s", 0.5}});
    auto res = cli.Post(("/api/v1/jobs/" + canceled + "/$cancel").c_str());
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(body_json(res)["status"] == "canceled");
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + deleted).c_str()), 204);
    CHECK(get_json(cli, "/api/v1/system")["jobs_scheduled"] == 0);
    // Past their time, and past a job due after them that did run.
    const std::string after = submit_body(cli, "greet_user", {{"delay_s", 0.7}});
    CHECK(wait_job(cli, after)["status"] == "completed");
    json job = get_job(cli, canceled);
    CHECK(job["status"] == "canceled");
    CHECK(job["started_at"].is_null());
    CHECK(cli.Get(("/api/v1/jobs/" + deleted).c_str())->status == 404);
}

TEST_CASE("delayed jobs: kept across a restart, and run at their time after it") {
    Service svc(ServiceOptions().with_file_db());
    const int64_t at = wall_us() + 2'500'000;
    const std::string id = submit_body(svc.cli(), "greet_user", {{"params", {{"name", "again"}}}, {"run_at", iso_of(at)}});
    const std::string soon = submit_body(svc.cli(), "greet_user", {{"delay_s", 0.2}, {"priority", 3}});
    svc.restart();
    auto &cli = svc.cli();
    json job = get_job(cli, id);
    INFO(job.dump());
    if (wall_us() < at - 200'000) CHECK(job["status"] == "scheduled");
    json done = wait_job(cli, id);
    CHECK(done["status"] == "completed");
    CHECK(iso_us(done["started_at"]) >= at);
    CHECK(iso_us(done["started_at"]) - at < 2'000'000);
    json other = wait_job(cli, soon);
    CHECK(other["status"] == "completed");
    CHECK(other["priority"] == 3);
    CHECK(get_artifact(cli, done["artifact_id"])["data"]["result"] == json{{"message", "Hello, again!"}});
}

TEST_CASE("delayed jobs: at most --queue-size are held; more answer 503") {
    Service svc(ServiceOptions().with_file_db().flags({"--queue-size", "2"}));
    auto &cli = svc.cli();
    for (int i = 0; i < 2; ++i) submit_body(cli, "greet_user", {{"delay_s", 600}});
    auto res = post_json(cli, "/api/v1/tasks/greet_user/$execute", {{"delay_s", 600}});
    check_problem(res, 503, "Too many scheduled jobs");
    CHECK(res->has_header("Retry-After"));
    // Jobs to run now still have their queue.
    CHECK(run_task(cli, "greet_user").job["status"] == "completed");
}

TEST_CASE("idempotency keys: a repeat gets the first job, another request with the key 409, a new key a new job") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    auto first = post_keyed(cli, "greet_user", "order-7", R"({"params": {"name": "Ada"}})");
    REQUIRE(first);
    REQUIRE(first->status == 202);
    CHECK_FALSE(first->has_header("Idempotent-Replayed"));
    const std::string id = body_json(first)["job_id"].get<std::string>();

    // The same request in another spelling (key order, spaces): the same job.
    auto again = post_keyed(cli, "greet_user", "order-7", R"({ "params" : { "name":"Ada" } })");
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(again->get_header_value("Idempotent-Replayed") == "true");
    CHECK(again->get_header_value("Location") == "/api/v1/jobs/" + id);
    json replayed = body_json(again);
    CHECK(replayed["job_id"] == id);
    CHECK(replayed["id"] == id);
    CHECK(replayed["task_name"] == "greet_user");
    // With ?wait, the job once it has ended, with its artifact.
    auto waited = post_keyed(cli, "greet_user", "order-7", R"({"params": {"name": "Ada"}})", "?wait=10");
    REQUIRE(waited);
    CHECK(waited->status == 200);
    json done = body_json(waited);
    CHECK(done["status"] == "completed");
    CHECK(done["artifact"]["data"]["result"] == json{{"message", "Hello, Ada!"}});

    // Another request with the key: 409 naming the key and its job.
    check_problem(post_keyed(cli, "greet_user", "order-7", R"({"params": {"name": "Bob"}})"), 409,
                  "Idempotency-Key 'order-7' was used for a different request (job " + id + ")");
    check_problem(post_keyed(cli, "add", "order-7", R"({"params": {"name": "Ada"}})"), 409, "order-7");
    // Another key: another job.
    auto other = post_keyed(cli, "greet_user", "order-8", R"({"params": {"name": "Ada"}})");
    REQUIRE(other);
    CHECK(other->status == 202);
    CHECK(body_json(other)["job_id"] != id);
    CHECK(get_json(cli, "/api/v1/jobs").size() == 2);

    // Keys that are not a token.
    check_problem(post_keyed(cli, "greet_user", "has space", "{}"), 400, "Idempotency-Key must be 1 to 255 visible");
    check_problem(post_keyed(cli, "greet_user", std::string(256, 'k'), "{}"), 400, "Idempotency-Key must be");
    // A deleted job frees its key.
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + id).c_str()), 204);
    auto fresh = post_keyed(cli, "greet_user", "order-7", R"({"params": {"name": "Bob"}})");
    REQUIRE(fresh);
    CHECK(fresh->status == 202);
    CHECK(get_json(cli, "/api/v1/jobs").size() == 2);
}

TEST_CASE("idempotency keys: 16 concurrent identical submits make exactly one job") {
    Service svc(ServiceOptions().with_file_db());
    constexpr int kClients = 16;
    std::vector<int> status(kClients, 0);
    std::vector<std::string> ids(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", svc.host().port());
            auto res = post_keyed(cli, "greet_user", "same-key", R"({"params": {"name": "once"}})");
            if (!res) return;
            status[static_cast<size_t>(c)] = res->status;
            auto body = json::parse(res->body, nullptr, false);
            if (body.is_object() && body.contains("job_id")) ids[static_cast<size_t>(c)] = body["job_id"];
        });
    for (auto &t : clients) t.join();
    CHECK(std::count(status.begin(), status.end(), 202) == 1);
    CHECK(std::count(status.begin(), status.end(), 200) == kClients - 1);
    CHECK(std::count(ids.begin(), ids.end(), ids[0]) == kClients);
    CHECK(get_json(svc.cli(), "/api/v1/jobs").size() == 1);
}

TEST_CASE("idempotency keys: kept across a restart, and free again after --idempotency-ttl") {
    Service svc(ServiceOptions().with_file_db());
    const std::string body = R"({"params": {"name": "kept"}})";
    auto first = post_keyed(svc.cli(), "greet_user", "restart-key", body);
    REQUIRE(first);
    REQUIRE(first->status == 202);
    const std::string id = body_json(first)["job_id"].get<std::string>();
    svc.restart();
    auto again = post_keyed(svc.cli(), "greet_user", "restart-key", body);
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(body_json(again)["job_id"] == id);
    // A second of validity: the key then makes a new job (polled; each
    // answer before that is the old job, never a second new one).
    svc.restart({"--idempotency-ttl", "1"});
    std::string renewed;
    CHECK(eventually(
        [&] {
            auto res = post_keyed(svc.cli(), "greet_user", "restart-key", body);
            if (!res || (res->status != 200 && res->status != 202)) return false;
            const json answer = body_json(res);
            if (res->status == 200) {
                CHECK(answer["job_id"] == id);
                return false;
            }
            renewed = answer["job_id"].get<std::string>();
            return res->status == 202;
        },
        std::chrono::milliseconds(5000), std::chrono::milliseconds(100)));
    CHECK(renewed != id);
    CHECK(get_json(svc.cli(), "/api/v1/jobs").size() == 2);
}

TEST_CASE("retries: fails twice, then succeeds; each attempt logged, backoff measured from the record") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    const fs::path counter = svc.dir() / "twice";
    // The task's policy: 4 attempts, 0.2 s doubling up to 1 s, no jitter.
    const std::string id =
        submit_body(cli, "fail_then_succeed", {{"params", {{"counter", counter.string()}, {"failures", 2}}}});
    json job = wait_job(cli, id);
    INFO(job.dump());
    REQUIRE(job["status"] == "completed");
    CHECK(job["attempt"] == 3);
    CHECK(job["max_attempts"] == 4);
    CHECK(job["next_attempt_at"].is_null());
    CHECK(job["error"].is_null());
    CHECK(job["retry"] == json{{"max_attempts", 4},
                               {"backoff", "exponential"},
                               {"delay_s", 0.2},
                               {"max_delay_s", 1.0},
                               {"jitter", false}});
    const json &attempts = job["attempts"];
    REQUIRE(attempts.size() == 2);
    for (int i = 0; i < 2; ++i) {
        CAPTURE(i);
        CHECK(attempts[i]["attempt"] == i + 1);
        CHECK(attempts[i]["error"].get<std::string>().find("attempt " + std::to_string(i + 1) + " failed") !=
              std::string::npos);
        CHECK(iso_us(attempts[i]["finished_at"]) >= iso_us(attempts[i]["started_at"]));
    }
    // Each wait at least its backoff (0.2 s, then 0.4 s), and not much more
    // (a timer, a worker's start).
    const int64_t first_wait = iso_us(attempts[1]["started_at"]) - iso_us(attempts[0]["finished_at"]);
    const int64_t second_wait = iso_us(job["started_at"]) - iso_us(attempts[1]["finished_at"]);
    CHECK(first_wait >= 200'000);
    CHECK(first_wait < 1'200'000);
    CHECK(second_wait >= 400'000);
    CHECK(second_wait < 1'400'000);
    CHECK(runs(counter) == 3);
    CHECK(get_artifact(cli, job["artifact_id"])["data"]["result"] == json{{"attempt", 3}});
    // With ?wait, a job first run before its answer (stored with its end)
    // is stored at its failure, and the answer waits through the retry.
    const fs::path waited = svc.dir() / "waited";
    for (int i = 0; i < 3; ++i)  // quick runs make the task eligible to run before the answer
        wait_job(cli,
                 submit_body(
                     cli, "fail_then_succeed",
                     {{"params", {{"counter", (svc.dir() / ("w" + std::to_string(i))).string()}, {"failures", 0}}}}));
    auto res = post_json(cli, "/api/v1/tasks/fail_then_succeed/$execute?wait=10",
                         {{"params", {{"counter", waited.string()}, {"failures", 1}}}});
    REQUIRE(res);
    INFO(res->body);
    CHECK(res->status == 200);
    CHECK(body_json(res)["status"] == "completed");
    CHECK(body_json(res)["attempt"] == 2);
    CHECK(get_job(cli, body_json(res)["id"])["attempts"].size() == 1);
    auto metrics = cli.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->body.find("taskhost_job_retries_total{task=\"fail_then_succeed\"} 3") != std::string::npos);
}

TEST_CASE("retries: out of attempts, the job fails with its last error and the others logged (in process)") {
    // The in-process executor; the other retry cases run in worker processes.
    Service svc(with_flaky().in_process());
    auto &cli = svc.cli();
    const fs::path counter = svc.dir() / "always";
    // A submit's "retry" overrides the task's policy, member by member.
    const std::string id = submit_body(cli, "fail_then_succeed",
                                       {{"params", {{"counter", counter.string()}, {"failures", 100}}},
                                        {"retry", {{"max_attempts", 3}, {"delay_s", 0.05}}}});
    json job = wait_job(cli, id);
    INFO(job.dump());
    CHECK(job["status"] == "failed");
    CHECK(job["attempt"] == 3);
    CHECK(job["max_attempts"] == 3);
    CHECK(job["retry"]["delay_s"] == 0.05);
    CHECK(job["retry"]["max_delay_s"] == 1.0);  // the task's
    CHECK(job["error"].get<std::string>().find("attempt 3 failed") != std::string::npos);
    CHECK(job["attempts"].size() == 2);
    CHECK(runs(counter) == 3);
    // A task without a policy runs once, unless its submit gives one.
    const fs::path once = svc.dir() / "once";
    json plain =
        wait_job(cli, submit_body(cli, "no_policy", {{"params", {{"counter", once.string()}, {"failures", 1}}}}));
    CHECK(plain["status"] == "failed");
    CHECK(plain["max_attempts"] == 1);
    CHECK(plain["retry"].is_null());
    CHECK(plain["attempts"] == json::array());
    const fs::path given = svc.dir() / "given";
    json retried = wait_job(cli, submit_body(cli, "no_policy",
                                             {{"params", {{"counter", given.string()}, {"failures", 1}}},
                                              {"retry", {{"max_attempts", 2}, {"delay_s", 0}}}}));
    CHECK(retried["status"] == "completed");
    CHECK(retried["attempt"] == 2);
}

TEST_CASE("retries: exceptions the task does not retry on, PermanentError and bad params fail at once") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    for (const std::string task : {"wrong_kind", "permanent"}) {
        CAPTURE(task);
        const fs::path counter = svc.dir() / task;
        json job = wait_job(cli, submit_body(cli, task, {{"params", {{"counter", counter.string()}}}}));
        CHECK(job["status"] == "failed");
        CHECK(job["attempt"] == 1);
        CHECK(job["max_attempts"] == 3);
        CHECK(job["attempts"] == json::array());
        CHECK(runs(counter) == 1);
    }
}

TEST_CASE("retries: an attempt that times out runs again, however its code stops") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    // One returns when told to stop; the other throws taskhost::Cancelled,
    // which its retry_on<Transient>() does not name: a timeout retries anyway.
    for (const std::string task : {"slow_then_quick", "cooperative_then_quick"}) {
        CAPTURE(task);
        const fs::path counter = svc.dir() / task;
        json job = wait_job(cli, submit_body(cli, task, {{"params", {{"counter", counter.string()}, {"slow", 1}}}}));
        INFO(job.dump());
        CHECK(job["status"] == "completed");
        CHECK(job["attempt"] == 2);
        REQUIRE(job["attempts"].size() == 1);
        CHECK(job["attempts"][0]["error"].get<std::string>().find("timed out after 0.3 s") != std::string::npos);
    }
}

TEST_CASE("retries: a cancel after an attempt's timeout, before its code stopped, ends the job there") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    const fs::path counter = svc.dir() / "stubborn";
    const std::string id =
        submit_body(cli, "stubborn_then_quick", {{"params", {{"counter", counter.string()}, {"stubborn_s", 1.5}}}});
    // Timed out (cancel_requested), its code still sleeping.
    REQUIRE(eventually([&] { return get_job(cli, id)["cancel_requested"] == true; }));
    REQUIRE(get_job(cli, id)["status"] == "running");
    REQUIRE_STATUS(cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str()), 202);
    json job = wait_job(cli, id);
    INFO(job.dump());
    // It ends as its attempt did (timed out first), and is not retried.
    CHECK(job["status"] == "failed");
    CHECK(job["error"] == "timed out after 0.2 s");
    CHECK(job["attempt"] == 1);
    CHECK(job["attempts"] == json::array());
    CHECK(runs(counter) == 1);
}

TEST_CASE("retries: a job waiting for its next attempt is scheduled, cancellable, and kept across a restart") {
    Service svc(with_flaky());
    const fs::path counter = svc.dir() / "later";
    const json body = {{"params", {{"counter", counter.string()}, {"failures", 1}}},
                       {"retry", {{"backoff", "fixed"}, {"delay_s", 1.5}, {"jitter", false}}}};
    const std::string id = submit_body(svc.cli(), "fail_then_succeed", body);
    json waiting = wait_status(svc.cli(), id, "scheduled");
    INFO(waiting.dump());
    CHECK(waiting["attempt"] == 1);
    REQUIRE(waiting["attempts"].size() == 1);
    const int64_t next = iso_us(waiting["next_attempt_at"]);
    CHECK(next - iso_us(waiting["attempts"][0]["finished_at"]) == 1'500'000);
    CHECK(waiting["run_at"] == waiting["next_attempt_at"]);
    CHECK(waiting["started_at"].is_null());

    // Canceled while it waits: it never runs again.
    const fs::path other = svc.dir() / "canceled";
    const std::string canceled =
        submit_body(svc.cli(), "fail_then_succeed",
                    {{"params", {{"counter", other.string()}, {"failures", 1}}}, {"retry", body["retry"]}});
    wait_status(svc.cli(), canceled, "scheduled");
    REQUIRE_STATUS(svc.cli().Post(("/api/v1/jobs/" + canceled + "/$cancel").c_str()), 200);

    svc.restart();
    auto &cli = svc.cli();
    json done = wait_job(cli, id);
    INFO(done.dump());
    CHECK(done["status"] == "completed");
    CHECK(done["attempt"] == 2);
    CHECK(iso_us(done["started_at"]) >= next);
    CHECK(iso_us(done["started_at"]) - next < 2'000'000);
    CHECK(done["attempts"].size() == 1);
    json stopped = get_job(cli, canceled);
    CHECK(stopped["status"] == "canceled");
    CHECK(stopped["attempt"] == 1);
    CHECK(runs(other) == 1);
}

TEST_CASE("retries: a worker crash retries only a retry-safe task") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    const fs::path safe = svc.dir() / "safe";
    json job = wait_job(
        cli, submit_body(cli, "crash_then_succeed_safe", {{"params", {{"counter", safe.string()}, {"crashes", 1}}}}));
    INFO(job.dump());
    CHECK(job["status"] == "completed");
    CHECK(job["attempt"] == 2);
    REQUIRE(job["attempts"].size() == 1);
    CHECK(job["attempts"][0]["error"].get<std::string>().find("WorkerCrashed") != std::string::npos);
}

TEST_CASE("retries: a crash fails a task that is not retry-safe, whatever its policy") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    const fs::path unsafe = svc.dir() / "unsafe";
    json job = wait_job(
        cli, submit_body(cli, "crash_then_succeed", {{"params", {{"counter", unsafe.string()}, {"crashes", 1}}}}));
    INFO(job.dump());
    CHECK(job["status"] == "failed");
    CHECK(job["attempt"] == 1);
    CHECK(job["attempts"] == json::array());
    CHECK(runs(unsafe) == 1);
}

TEST_CASE("retries: a \"retry\" the host cannot follow is a 400 naming the member") {
    Service svc(with_flaky());
    auto &cli = svc.cli();
    const std::vector<std::pair<json, std::string>> cases = {
        {json::array(), "\"retry\" must be an object"},
        {{{"max_attempts", 0}}, "\"retry\".max_attempts"},
        {{{"max_attempts", 101}}, "\"retry\".max_attempts"},
        {{{"max_attempts", 2.5}}, "\"retry\".max_attempts"},
        {{{"backoff", "linear"}}, "\"retry\".backoff"},
        {{{"delay_s", -1}}, "\"retry\".delay_s"},
        {{{"max_delay_s", 1e9}}, "\"retry\".max_delay_s"},
        {{{"jitter", "yes"}}, "\"retry\".jitter"},
        {{{"tries", 3}}, "\"retry\".tries"},
    };
    for (const auto &one : cases) {  // not a structured binding: CAPTURE's lambda takes it (clang 14)
        const json &retry = one.first;
        const std::string &says = one.second;
        CAPTURE(retry.dump());
        auto res =
            post_json(cli, "/api/v1/tasks/no_policy/$execute",
                      {{"params", {{"counter", (svc.dir() / "x").string()}, {"failures", 0}}}, {"retry", retry}});
        REQUIRE(res);
        CHECK(res->status == 400);
        CHECK(body_json(res)["detail"].get<std::string>().find(says) != std::string::npos);
    }
}

TEST_CASE("retention: finished jobs older than --retain-finished go with their result artifacts; others stay") {
    Service svc(ServiceOptions().with_file_db().flags({"--retain-finished", "1"}));
    auto &cli = svc.cli();
    std::vector<std::pair<std::string, std::string>> done;  // job, artifact
    for (int i = 0; i < 3; ++i) {
        json job = wait_job(cli, submit(cli, "hello"));
        REQUIRE(job["status"] == "completed");
        done.emplace_back(job["id"], job["artifact_id"]);
    }
    const std::string later = submit_body(cli, "greet_user", {{"delay_s", 120}});
    const std::string running = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, running, "running");
    CHECK(get_json(cli, "/api/v1/system")["retention"]["finished_s"] == 1);
    // A pass runs every second; a job goes once it finished over 1 s ago.
    REQUIRE(eventually([&] { return cli.Get(("/api/v1/jobs/" + done.back().first).c_str())->status == 404; }));
    for (const auto &one : done) {  // not a structured binding: CAPTURE's lambda takes it (clang 14)
        const std::string &job = one.first, &artifact = one.second;
        CAPTURE(job);
        CHECK(cli.Get(("/api/v1/jobs/" + job).c_str())->status == 404);
        CHECK(cli.Get(("/api/v1/artifacts/" + artifact).c_str())->status == 404);
    }
    CHECK(get_job(cli, later)["status"] == "scheduled");
    CHECK(get_job(cli, running)["status"] == "running");
    const json system = get_json(cli, "/api/v1/system");
    CHECK(system["retention"]["jobs_deleted"] == 3);
    CHECK(system["retention"]["artifacts_deleted"] == 3);
    auto metrics = cli.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->body.find("taskhost_retention_jobs_deleted_total 3") != std::string::npos);
    CHECK(metrics->body.find("taskhost_retention_artifacts_deleted_total 3") != std::string::npos);
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + running).c_str()), 204);
}

TEST_CASE("retention: --retain-max-jobs keeps the newest finished jobs") {
    Service svc(ServiceOptions().with_file_db().flags(
        {"--retain-finished", "0", "--retain-max-jobs", "3", "--retain-interval", "0.2"}));
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(wait_job(cli, submit(cli, "hello"))["id"]);
    REQUIRE(eventually([&] { return get_json(cli, "/api/v1/jobs?status_filter=completed").size() == 3; }));
    const json kept = get_json(cli, "/api/v1/jobs?status_filter=completed");
    std::set<std::string> newest(ids.end() - 3, ids.end()), seen;
    for (const auto &job : kept) seen.insert(job["id"].get<std::string>());
    CHECK(seen == newest);
    CHECK(get_json(cli, "/api/v1/system")["retention"]["finished_s"].is_null());
    CHECK(get_json(cli, "/api/v1/system")["retention"]["max_jobs"] == 3);
}

TEST_CASE("DELETE /api/v1/jobs: finished jobs by status and time, with their artifacts; the 400s") {
    Service svc(ServiceOptions().with_file_db().flags({"--retain-finished", "0"}));
    auto &cli = svc.cli();
    auto del = [&](const std::string &query) { return cli.Delete(("/api/v1/jobs" + query).c_str()); };
    auto res = del("");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(body_json(res)["detail"].get<std::string>().find("finished_before is required") != std::string::npos);
    CHECK(del("?finished_before=yesterday")->status == 400);
    res = del("?finished_before=2030-01-01T00:00:00Z&status_filter=pending");
    CHECK(res->status == 400);
    CHECK(body_json(res)["detail"].get<std::string>().find("only finished jobs") != std::string::npos);

    json ok = wait_job(cli, submit(cli, "hello"));
    json failed = wait_job(cli, submit(cli, "failing_task"));
    REQUIRE(failed["status"] == "failed");
    const std::string pending = submit_body(cli, "greet_user", {{"delay_s", 120}});
    // Before the jobs finished: nothing.
    res = del("?finished_before=2020-01-01T00:00:00Z");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(body_json(res) == json{{"deleted", 0}, {"artifacts_deleted", 0}});
    // Only the failed one.
    res = del("?finished_before=2100-01-01T00:00:00Z&status_filter=failed");
    CHECK(body_json(res) == json{{"deleted", 1}, {"artifacts_deleted", 1}});
    CHECK(cli.Get(("/api/v1/jobs/" + failed["id"].get<std::string>()).c_str())->status == 404);
    CHECK(cli.Get(("/api/v1/artifacts/" + failed["artifact_id"].get<std::string>()).c_str())->status == 404);
    CHECK(get_job(cli, ok["id"])["status"] == "completed");
    // Every finished one; a scheduled job stays.
    res = del("?finished_before=2100-01-01T00:00:00Z");
    CHECK(body_json(res) == json{{"deleted", 1}, {"artifacts_deleted", 1}});
    CHECK(get_json(cli, "/api/v1/jobs").size() == 1);
    CHECK(get_job(cli, pending)["status"] == "scheduled");
    CHECK(get_json(cli, "/api/v1/system")["retention"]["jobs_deleted"] == 2);
}

}  // TEST_SUITE("lifecycle")

TEST_SUITE("concurrency") {

TEST_CASE("delayed jobs: cancels and deletes racing their due timers leave each job in one consistent end") {
    Service svc(ServiceOptions().with_file_db().flags({"--max-concurrency", "2"}));
    constexpr int kJobs = 48;
    std::vector<std::string> ids;
    // Due times spread over 0..0.35 s, so the timer fires while the
    // cancels and deletes below are under way.
    for (int i = 0; i < kJobs; ++i)
        ids.push_back(submit_body(svc.cli(), "greet_user", {{"delay_s", 0.05 * (i % 8)}, {"priority", i % 3}}));
    std::vector<int> answer(kJobs, 0);  // what the cancel or delete answered
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            httplib::Client cli("127.0.0.1", svc.host().port());
            cli.set_read_timeout(30, 0);  // a cancel may wait for its commit; TSan is slow
            for (int i = t; i < kJobs; i += 2) {
                if (i % 4 == 3) continue;  // left alone: runs at its time
                auto res = i % 4 == 1 ? cli.Delete(("/api/v1/jobs/" + ids[static_cast<size_t>(i)]).c_str())
                                      : cli.Post(("/api/v1/jobs/" + ids[static_cast<size_t>(i)] + "/$cancel").c_str());
                answer[static_cast<size_t>(i)] = res ? res->status : -1;
            }
        });
    for (auto &t : threads) t.join();
    auto &cli = svc.cli();
    for (int i = 0; i < kJobs; ++i) {
        const std::string &id = ids[static_cast<size_t>(i)];
        CAPTURE(i);
        CAPTURE(answer[static_cast<size_t>(i)]);
        if (i % 4 == 1) {  // deleted, whatever state it was in
            CHECK(answer[static_cast<size_t>(i)] == 204);
            CHECK(cli.Get(("/api/v1/jobs/" + id).c_str())->status == 404);
            continue;
        }
        json job = wait_job(cli, id);
        if (i % 4 == 3) {
            CHECK(job["status"] == "completed");
        } else if (answer[static_cast<size_t>(i)] == 200) {  // canceled before it started
            CHECK(job["status"] == "canceled");
            CHECK(job["started_at"].is_null());
        } else {  // it had started (202) or finished (409) by then
            CHECK((answer[static_cast<size_t>(i)] == 202 || answer[static_cast<size_t>(i)] == 409));
            CHECK(job["started_at"].is_string());
        }
    }
    CHECK(eventually([&] { return get_json(cli, "/api/v1/system")["jobs_scheduled"] == 0; }));
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=scheduled").empty());
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=pending").empty());
}

TEST_CASE("retries: cancels racing failed attempts and their timers leave each job canceled or done, none stuck") {
    Service svc(with_flaky().flags({"--max-concurrency", "2"}));
    constexpr int kJobs = 32;
    std::vector<std::string> ids;
    // Each fails once or twice, then waits 0..0.1 s for its next attempt:
    // the cancels below land on running, retrying and scheduled jobs.
    for (int i = 0; i < kJobs; ++i)
        ids.push_back(submit_body(
            svc.cli(), "fail_then_succeed",
            {{"params", {{"counter", (svc.dir() / ("c" + std::to_string(i))).string()}, {"failures", 1 + i % 2}}},
             {"retry", {{"backoff", "fixed"}, {"delay_s", 0.02 * (i % 6)}, {"jitter", false}}}}));
    std::vector<int> answer(kJobs, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&, t] {
            httplib::Client cli("127.0.0.1", svc.host().port());
            cli.set_read_timeout(30, 0);
            for (int i = t; i < kJobs; i += 2) {
                if (i % 3 == 2) continue;  // left alone
                auto res = cli.Post(("/api/v1/jobs/" + ids[static_cast<size_t>(i)] + "/$cancel").c_str());
                answer[static_cast<size_t>(i)] = res ? res->status : -1;
            }
        });
    for (auto &t : threads) t.join();
    auto &cli = svc.cli();
    for (int i = 0; i < kJobs; ++i) {
        CAPTURE(i);
        CAPTURE(answer[static_cast<size_t>(i)]);
        json job = wait_job(cli, ids[static_cast<size_t>(i)], 30);
        INFO(job.dump());
        const int ran = runs(svc.dir() / ("c" + std::to_string(i)));
        if (i % 3 == 2) {
            CHECK(job["status"] == "completed");
            CHECK(job["attempt"] == 2 + i % 2);
            continue;
        }
        // 200: canceled at once (pending or waiting for an attempt); 202:
        // asked while an attempt ran; 409: it had completed.
        const int said = answer[static_cast<size_t>(i)];
        CHECK((said == 200 || said == 202 || said == 409));
        if (said == 409) CHECK(job["status"] == "completed");
        else CHECK((job["status"] == "canceled" || job["status"] == "completed"));
        // Never an attempt after the cancel's: the log and the runs agree.
        CHECK(job["attempt"] == ran);
        CHECK(job["attempts"].size() + (job["started_at"].is_null() ? 0u : 1u) == static_cast<size_t>(ran));
    }
    CHECK(eventually([&] { return get_json(cli, "/api/v1/system")["jobs_scheduled"] == 0; }));
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=scheduled").empty());
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=running").empty());
}

}  // TEST_SUITE("concurrency")
