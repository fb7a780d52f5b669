// Jobs: lifecycle, results stored as artifacts, list/filter, delete, the
// example tasks end to end.
#include "test_util.hpp"

#include <cmath>
#include <fstream>
#include <set>

using namespace th_test;

namespace {

void check_job_record(const json &job, const std::string &id, const std::string &task, const std::string &status) {
    INFO(job.dump());
    CHECK(job["id"] == id);
    CHECK(job["task_name"] == task);
    CHECK(job["status"] == status);
    CHECK(is_iso_utc(job["submitted_at"]));
    CHECK(is_iso_utc(job["started_at"]));
    CHECK(is_iso_utc(job["finished_at"]));
    if (is_iso_utc(job["started_at"]) && is_iso_utc(job["finished_at"])) {
        // Same fixed format: string order is time order.
        CHECK(job["submitted_at"].get<std::string>() <= job["started_at"].get<std::string>());
        CHECK(job["started_at"].get<std::string>() <= job["finished_at"].get<std::string>());
    }
}

// Every artifact in the store (plain list).
json all_artifacts(httplib::Client &cli) { return get_json(cli, "/api/v1/artifacts"); }

}  // namespace

TEST_SUITE("jobs") {

TEST_CASE("greet_user Alice: job record and result artifact") {
    Service svc;
    auto &cli = svc.cli();
    std::string id = submit(cli, "greet_user", {{"name", "Alice"}});
    json waited = wait_job(cli, id);
    json job = get_job(cli, id);
    check_job_record(job, id, "greet_user", "completed");
    CHECK(job["error"].is_null());
    CHECK(job["error_traceback"].is_null());
    // Versions and the host that ran it are a fleet's: a single host has none.
    CHECK(job["plugin_version"].is_null());
    CHECK(job["ran_version"].is_null());
    CHECK(job["run_by"].is_null());
    CHECK_FALSE(get_json(cli, "/api/v1/tasks/greet_user").contains("hosts"));
    REQUIRE(is_ulid(job["artifact_id"]));
    CHECK(job["result"] == job["artifact_id"]);
    CHECK(waited["artifact_id"] == job["artifact_id"]);

    json art = get_artifact(cli, job["result"]);
    CHECK(art["id"] == job["artifact_id"]);
    CHECK(art["data"] == json{{"task_name", "greet_user"},
                              {"params", {{"name", "Alice"}}},
                              {"result", {{"message", "Hello, Alice!"}}},
                              {"error", nullptr}});
    CHECK(art["level"] == 0);
    CHECK(art["parent_id"].is_null());
    CHECK(art["tags"] == json::array());
    CHECK(is_iso_utc(art["created_at"]));
    CHECK(is_iso_utc(art["updated_at"]));

    // The listing shows the same record.
    json list = get_json(cli, "/api/v1/jobs");
    REQUIRE(list.size() == 1);
    CHECK(list[0]["id"] == id);
    CHECK(list[0]["status"] == "completed");
    CHECK(list[0]["artifact_id"] == job["artifact_id"]);
}

TEST_CASE("greet_user without params uses the default") {
    Service svc;
    auto done = run_task(svc.cli(), "greet_user");
    CHECK(done.artifact["data"] == json{{"task_name", "greet_user"},
                                        {"params", json::object()},
                                        {"result", {{"message", "Hello, World!"}}},
                                        {"error", nullptr}});
    CHECK(done.artifact["level"] == 0);
    CHECK(done.artifact["parent_id"].is_null());
}

TEST_CASE("hello, greet, add, multiply, multiply_numbers results") {
    Service svc;
    auto &cli = svc.cli();
    CHECK(run_task(cli, "hello").artifact["data"]["result"] == json{{"message", "Hello!"}});
    CHECK(run_task(cli, "greet").artifact["data"]["result"] == json{{"message", "Hello, World!"}});
    CHECK(run_task(cli, "greet", {{"name", "Alice"}, {"greeting", "Hi"}}).artifact["data"]["result"] ==
          json{{"message", "Hi, Alice!"}});
    auto add = run_task(cli, "add", {{"a", 2}, {"b", 3}});
    CHECK(add.artifact["data"]["result"] == json{{"result", 5}});
    CHECK(add.artifact["data"]["params"] == json{{"a", 2}, {"b", 3}});
    CHECK(run_task(cli, "add", {{"a", -7}, {"b", 3}}).artifact["data"]["result"] == json{{"result", -4}});
    CHECK(run_task(cli, "multiply", {{"a", 5}, {"b", 3}}).artifact["data"]["result"] == json{{"result", 15}});
    CHECK(run_task(cli, "multiply_numbers", {{"a", 6}, {"b", 7}}).artifact["data"]["result"] ==
          json{{"result", 42}, {"a", 6}, {"b", 7}});
}

TEST_CASE("failing_task: job failed, error artifact linked, status_filter finds it") {
    Service svc;
    auto &cli = svc.cli();
    std::string ok_id = run_task(cli, "hello").job["id"];
    std::string id = submit(cli, "failing_task");
    json job = wait_job(cli, id);
    check_job_record(job, id, "failing_task", "failed");
    REQUIRE(job["error"].is_string());
    CHECK_CONTAINS(job["error"].get<std::string>(), "std::invalid_argument");
    CHECK_CONTAINS(job["error"].get<std::string>(), "Something went wrong");
    REQUIRE(job["error_traceback"].is_string());
    CHECK_FALSE(job["error_traceback"].get<std::string>().empty());
    CHECK_CONTAINS(job["error_traceback"].get<std::string>(), "std::invalid_argument: Something went wrong");
    REQUIRE(is_ulid(job["artifact_id"]));
    CHECK(job["result"] == job["artifact_id"]);

    json data = get_artifact(cli, job["artifact_id"])["data"];
    CHECK(data["task_name"] == "failing_task");
    CHECK(data["params"] == json::object());
    CHECK(data["result"].is_null());
    REQUIRE(data["error"].is_object());
    CHECK(data["error"]["type"] == "std::invalid_argument");
    CHECK(data["error"]["message"] == "Something went wrong");
    REQUIRE(data["error"]["traceback"].is_string());
    CHECK_FALSE(data["error"]["traceback"].get<std::string>().empty());

    json failed = get_json(cli, "/api/v1/jobs?status_filter=failed");
    REQUIRE(failed.size() == 1);
    CHECK(failed[0]["id"] == id);
    json completed = get_json(cli, "/api/v1/jobs?status_filter=completed");
    REQUIRE(completed.size() == 1);
    CHECK(completed[0]["id"] == ok_id);
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=running") == json::array());
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=pending") == json::array());
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=canceled") == json::array());
}

TEST_CASE("status_filter with an unknown value → 400") {
    Service svc;
    json p = check_problem(svc.cli().Get("/api/v1/jobs?status_filter=bogus"), 400, "status_filter");
    CHECK_CONTAINS(p["detail"].get<std::string>(), "bogus");
}

TEST_CASE("a fresh service has no jobs") {
    Service svc;
    CHECK(get_json(svc.cli(), "/api/v1/jobs") == json::array());
}

TEST_CASE("list jobs: newest first") {
    Service svc;
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(submit(cli, "hello"));
        std::this_thread::sleep_for(10ms);  // distinct submission times, as the original's test
    }
    for (const auto &id : ids) wait_job(cli, id);
    json list = get_json(cli, "/api/v1/jobs");
    REQUIRE(list.size() == 3);
    CHECK(list[0]["id"] == ids[2]);
    CHECK(list[1]["id"] == ids[1]);
    CHECK(list[2]["id"] == ids[0]);
    for (const auto &j : list) CHECK(j["status"] == "completed");
}

TEST_CASE("GET unknown or invalid job id → 404") {
    Service svc;
    json p = check_problem(svc.cli().Get("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999"), 404, "Job not found");
    CHECK(p["instance"] == "/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999");
    check_problem(svc.cli().Get("/api/v1/jobs/invalid-ulid"), 404, "Job not found");
    check_problem(svc.cli().Get("/api/v1/jobs/01k72p5n5kcrm6md3bre4p0999"), 404);  // lowercase is not a ULID
}

TEST_CASE("DELETE a finished job: 204, then 404") {
    Service svc;
    auto &cli = svc.cli();
    std::string id = run_task(cli, "hello").job["id"];
    auto res = cli.Delete(("/api/v1/jobs/" + id).c_str());
    REQUIRE_STATUS(res, 204);
    CHECK(res->body.empty());
    check_problem(cli.Get(("/api/v1/jobs/" + id).c_str()), 404, "Job not found");
    check_problem(cli.Delete(("/api/v1/jobs/" + id).c_str()), 404, "Job not found");
    // The host keeps the last ended jobs in memory; a deleted one is not among them.
    check_problem(cli.Get(("/api/v1/jobs/" + id + "?wait=1").c_str()), 404, "Job not found");
    check_problem(cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str()), 404);
    CHECK(get_json(cli, "/api/v1/jobs") == json::array());
}

TEST_CASE("DELETE unknown job → 404") {
    Service svc;
    check_problem(svc.cli().Delete("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999"), 404, "Job not found");
    check_problem(svc.cli().Delete("/api/v1/jobs/not-a-ulid"), 404, "Job not found");
}

TEST_CASE("DELETE a running job: 204 quickly, then 404, and it never comes back") {
    Service svc;
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, id, "running");
    auto t0 = std::chrono::steady_clock::now();
    auto res = cli.Delete(("/api/v1/jobs/" + id).c_str());
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_STATUS(res, 204);
    CHECK(took < 2s);
    check_problem(cli.Get(("/api/v1/jobs/" + id).c_str()), 404);
    // The task notices the cancellation and the worker frees up...
    CHECK(eventually([&] { return get_json(cli, "/api/v1/system")["jobs_running"] == 0; }, 5000ms));
    // ...without resurrecting the record.
    check_problem(cli.Get(("/api/v1/jobs/" + id).c_str()), 404);
    CHECK(get_json(cli, "/api/v1/jobs") == json::array());
}

TEST_CASE("process_data: injected Database and Artifacts") {
    Service svc;
    auto &cli = svc.cli();
    auto done = run_task(cli, "process_data");
    json result = done.artifact["data"]["result"];
    CHECK(result["status"] == "complete");
    REQUIRE(is_ulid(result["artifact_id"]));
    CHECK(result["artifact_id"] != done.job["artifact_id"]);
    REQUIRE(result["database_url"].is_string());
    CHECK_CONTAINS(result["database_url"].get<std::string>(), "sqlite://");
    json inner = get_artifact(cli, result["artifact_id"]);
    CHECK(inner["data"] == json{{"status", "processed"}, {"records", 42}, {"timestamp", "2025-10-18T12:00:00Z"}});
    CHECK(inner["level"] == 0);
    CHECK(inner["parent_id"].is_null());
    // Two artifacts: the inner one and the result.
    CHECK(all_artifacts(cli).size() == 2);
    CHECK(done.artifact["data"]["params"] == json::object());
}

TEST_CASE("store_result saves the given data as an artifact") {
    Service svc;
    auto &cli = svc.cli();
    auto done = run_task(cli, "store_result", {{"data", {{"k", "v"}}}});
    json result = done.artifact["data"]["result"];
    REQUIRE(is_ulid(result["artifact_id"]));
    json stored = get_artifact(cli, result["artifact_id"]);
    CHECK(stored["data"] == json{{"k", "v"}});
    CHECK(stored["level"] == 0);
    // Any JSON value is accepted for a json parameter.
    auto arr = run_task(cli, "store_result", {{"data", json::array({1, "two", nullptr})}});
    CHECK(get_artifact(cli, arr.artifact["data"]["result"]["artifact_id"])["data"] == json::array({1, "two", nullptr}));
    check_problem(post_json(cli, "/api/v1/tasks/store_result/$execute", json::object()), 400, "'data'");
}

TEST_CASE("count_users reads the table the plugin's init seeded") {
    Service svc;
    CHECK(run_task(svc.cli(), "count_users").artifact["data"]["result"] == json{{"user_count", 3}});
}

TEST_CASE("long_task: progress artifacts, progress fields and result") {
    Service svc;
    auto &cli = svc.cli();
    auto done = run_task(cli, "long_task", {{"steps", 3}});
    CHECK(done.artifact["data"]["result"] ==
          json{{"status", "complete"}, {"steps_completed", 3}, {"results", json::array({0, 1, 4})}});
    CHECK(done.job["progress"] == 1.0);
    CHECK(done.job["progress_message"] == "step 3 of 3");
    std::vector<json> progress;
    for (const auto &a : all_artifacts(cli))
        if (a["data"].is_object() && a["data"].contains("step")) progress.push_back(a["data"]);
    REQUIRE(progress.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(progress[i] == json{{"step", i}, {"total", 3}, {"result", i * i}});
    CHECK(all_artifacts(cli).size() == 4);
}

TEST_CASE("safe_task: handled errors complete the job") {
    Service svc;
    auto &cli = svc.cli();
    auto ok = run_task(cli, "safe_task", {{"risky_param", "16"}});
    CHECK(ok.artifact["data"]["result"] == json{{"status", "success"}, {"result", 4.0}});
    CHECK(ok.artifact["data"]["error"].is_null());
    auto bad = run_task(cli, "safe_task", {{"risky_param", "abc"}});
    CHECK(bad.job["error"].is_null());
    CHECK(bad.artifact["data"]["result"]["status"] == "error");
    CHECK_CONTAINS(bad.artifact["data"]["result"]["error"].get<std::string>(), "'abc' is not a finite number");
    auto neg = run_task(cli, "safe_task", {{"risky_param", "-4"}});
    CHECK(neg.artifact["data"]["result"]["status"] == "error");
    CHECK_CONTAINS(neg.artifact["data"]["result"]["error"].get<std::string>(), "negative");
}

TEST_CASE("process_csv on a file the test writes") {
    Service svc;
    auto &cli = svc.cli();
    fs::path csv = svc.dir() / "people.csv";
    {
        std::ofstream out(csv);
        out << "name,age,score\n"
               "alice,30,88.5\n"
               "bob,25,92\n"
               "carol,35,79.5\n";
    }
    auto done = run_task(cli, "process_csv", {{"filepath", csv.string()}});
    json r = done.artifact["data"]["result"];
    INFO(r.dump());
    CHECK(r["rows"] == 3);
    CHECK(r["columns"] == json::array({"name", "age", "score"}));
    REQUIRE(r["summary"].is_object());
    CHECK_FALSE(r["summary"].contains("name"));  // not numeric
    json age = r["summary"]["age"];
    CHECK(age["count"] == 3);
    CHECK(age["mean"].get<double>() == doctest::Approx(30.0));
    CHECK(age["std"].get<double>() == doctest::Approx(5.0));
    CHECK(age["min"].get<double>() == doctest::Approx(25.0));
    CHECK(age["max"].get<double>() == doctest::Approx(35.0));
    json score = r["summary"]["score"];
    const double mean = (88.5 + 92 + 79.5) / 3;
    const double var = ((88.5 - mean) * (88.5 - mean) + (92 - mean) * (92 - mean) + (79.5 - mean) * (79.5 - mean)) / 2;
    CHECK(score["count"] == 3);
    CHECK(score["mean"].get<double>() == doctest::Approx(mean));
    CHECK(score["std"].get<double>() == doctest::Approx(std::sqrt(var)));
    CHECK(score["min"].get<double>() == doctest::Approx(79.5));
    CHECK(score["max"].get<double>() == doctest::Approx(92.0));
}

TEST_CASE("process_csv on a missing file: failed job with a clear error") {
    Service svc;
    auto &cli = svc.cli();
    std::string missing = (svc.dir() / "no-such.csv").string();
    std::string id = submit(cli, "process_csv", {{"filepath", missing}});
    json job = wait_job(cli, id);
    CHECK(job["status"] == "failed");
    REQUIRE(job["error"].is_string());
    CHECK_CONTAINS(job["error"].get<std::string>(), "not found");
    CHECK_CONTAINS(job["error"].get<std::string>(), missing);
    json data = get_artifact(cli, job["artifact_id"])["data"];
    CHECK(data["result"].is_null());
    CHECK_CONTAINS(data["error"]["message"].get<std::string>(), missing);
}

TEST_CASE("extract / transform / load") {
    Service svc;
    auto &cli = svc.cli();
    CHECK(run_task(cli, "extract_data").artifact["data"]["result"] == json{{"records", 100}});
    CHECK(run_task(cli, "transform_data").artifact["data"]["result"] == json{{"transformed", true}});
    CHECK(run_task(cli, "load_data").artifact["data"]["result"] == json{{"loaded", true}});
}

TEST_CASE("max-concurrency 1: a second job stays pending while the first runs") {
    Service svc(ServiceOptions().flags({"--max-concurrency", "1"}));
    auto &cli = svc.cli();
    std::string first = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, first, "running");
    std::string second = submit(cli, "hello");
    // Give a free worker ample opportunity to (wrongly) start it.
    std::this_thread::sleep_for(200ms);
    json j2 = get_job(cli, second);
    CHECK(j2["status"] == "pending");
    CHECK(j2["started_at"].is_null());
    CHECK(j2["finished_at"].is_null());
    CHECK(get_job(cli, first)["status"] == "running");
    json running = get_json(cli, "/api/v1/jobs?status_filter=running");
    REQUIRE(running.size() == 1);
    CHECK(running[0]["id"] == first);
    json pending = get_json(cli, "/api/v1/jobs?status_filter=pending");
    REQUIRE(pending.size() == 1);
    CHECK(pending[0]["id"] == second);
    // Free the worker: the pending job then runs.
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + first).c_str()), 204);
    CHECK(wait_job(cli, second)["status"] == "completed");
}

TEST_CASE("slow_task completes with progress") {
    Service svc;
    auto done = run_task(svc.cli(), "slow_task", {{"seconds", 0.2}});
    CHECK(done.artifact["data"]["result"] == json{{"slept", 0.2}});
    CHECK(done.job["progress"] == 1.0);
    CHECK(done.job["progress_message"] == "done");
}

}  // TEST_SUITE("jobs")
