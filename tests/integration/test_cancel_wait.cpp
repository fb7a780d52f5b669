// POST /api/v1/jobs/{id}/$cancel and the ?wait= long polls.
#include "test_util.hpp"

using namespace th_test;

TEST_SUITE("cancel") {

TEST_CASE("cancel a running job: 202, then it ends canceled") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, id, "running");
    auto res = cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str(), "", "application/json");
    REQUIRE_STATUS(res, 202);
    json rec = body_json(res);
    CHECK(rec["id"] == id);
    CHECK(rec["cancel_requested"] == true);
    auto t0 = std::chrono::steady_clock::now();
    json job = wait_job(cli, id, 5);
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    CHECK(job["status"] == "canceled");
    CHECK(is_iso_utc(job["started_at"]));
    CHECK(is_iso_utc(job["finished_at"]));
    json canceled = get_json(cli, "/api/v1/jobs?status_filter=canceled");
    REQUIRE(canceled.size() == 1);
    CHECK(canceled[0]["id"] == id);
    // A second cancel: it has finished now.
    check_problem(cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str(), "", "application/json"), 409);
}

TEST_CASE("cancel a pending job: 200 and canceled at once") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "1"}));
    auto &cli = svc.cli();
    std::string first = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, first, "running");
    std::string second = submit(cli, "slow_task", {{"seconds", 30}});
    CHECK(get_job(cli, second)["status"] == "pending");
    auto res = cli.Post(("/api/v1/jobs/" + second + "/$cancel").c_str(), "", "application/json");
    REQUIRE_STATUS(res, 200);
    json rec = body_json(res);
    CHECK(rec["id"] == second);
    CHECK(rec["status"] == "canceled");
    CHECK(rec["started_at"].is_null());
    CHECK(is_iso_utc(rec["finished_at"]));
    json now = get_job(cli, second);
    CHECK(now["status"] == "canceled");
    CHECK(now["started_at"].is_null());
    // The first one is unaffected.
    CHECK(get_job(cli, first)["status"] == "running");
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + first).c_str()), 204);
    // The canceled job never runs, even once the worker is free.
    std::string probe = submit(cli, "hello");
    CHECK(wait_job(cli, probe)["status"] == "completed");
    CHECK(get_job(cli, second)["status"] == "canceled");
    CHECK(get_job(cli, second)["started_at"].is_null());
}

TEST_CASE("cancel a finished job → 409") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = run_task(cli, "hello").job["id"];
    json p = check_problem(cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str(), "", "application/json"), 409,
                           "already finished");
    CHECK_CONTAINS(p["detail"].get<std::string>(), "completed");
    CHECK(get_job(cli, id)["status"] == "completed");
}

TEST_CASE("cancel an unknown job → 404") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    check_problem(svc.cli().Post("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999/$cancel", "", "application/json"), 404,
                  "Job not found");
    check_problem(svc.cli().Post("/api/v1/jobs/bogus/$cancel", "", "application/json"), 404);
}

}  // TEST_SUITE("cancel")

TEST_SUITE("wait") {

TEST_CASE("$execute?wait=5 answers 200 with the finished job and its artifact") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    auto res = cli.Post("/api/v1/tasks/hello/$execute?wait=5", "{}", "application/json");
    REQUIRE_STATUS(res, 200);
    json j = body_json(res);
    REQUIRE(is_ulid(j["id"]));
    CHECK(j["task_name"] == "hello");
    CHECK(j["status"] == "completed");
    CHECK(is_iso_utc(j["finished_at"]));
    REQUIRE(is_ulid(j["artifact_id"]));
    CHECK(j["result"] == j["artifact_id"]);
    REQUIRE(j["artifact"].is_object());
    CHECK(j["artifact"]["id"] == j["artifact_id"]);
    CHECK(j["artifact"]["data"]["result"] == json{{"message", "Hello!"}});
    CHECK(j["artifact"]["data"]["task_name"] == "hello");
    CHECK(j["artifact"]["data"]["error"].is_null());
    // It is an ordinary job afterwards.
    CHECK(get_job(cli, j["id"])["status"] == "completed");
}

TEST_CASE("$execute?wait on a failing task answers 200 with the failed job") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto res = svc.cli().Post("/api/v1/tasks/failing_task/$execute?wait=5", "{}", "application/json");
    REQUIRE_STATUS(res, 200);
    json j = body_json(res);
    CHECK(j["status"] == "failed");
    CHECK_CONTAINS(j["error"].get<std::string>(), "Something went wrong");
    REQUIRE(j["artifact"].is_object());
    CHECK(j["artifact"]["data"]["error"]["type"] == "std::invalid_argument");
}

TEST_CASE("$execute?wait=0.1 on a slower job answers 202") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    auto t0 = std::chrono::steady_clock::now();
    auto res = cli.Post("/api/v1/tasks/slow_task/$execute?wait=0.1", R"({"params":{"seconds":5}})", "application/json");
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    REQUIRE_STATUS(res, 202);
    json j = body_json(res);
    REQUIRE(is_ulid(j["job_id"]));
    CHECK(j["message"] == "Task 'slow_task' submitted for execution. Job ID: " + j["job_id"].get<std::string>());
    CHECK_FALSE(is_terminal(get_job(cli, j["job_id"])["status"]));
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + j["job_id"].get<std::string>()).c_str()), 204);
}

TEST_CASE("GET /api/v1/jobs/{id}?wait=5 returns the terminal record") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 0.3}});
    auto t0 = std::chrono::steady_clock::now();
    json j = get_json(cli, "/api/v1/jobs/" + id + "?wait=5");
    CHECK(std::chrono::steady_clock::now() - t0 < 4s);
    CHECK(j["id"] == id);
    CHECK(j["status"] == "completed");
    CHECK(is_ulid(j["artifact_id"]));
    // On a finished job it answers at once.
    t0 = std::chrono::steady_clock::now();
    CHECK(get_json(cli, "/api/v1/jobs/" + id + "?wait=5")["status"] == "completed");
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("GET ?wait that times out returns the current (non-terminal) record") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 30}});
    json j = get_json(cli, "/api/v1/jobs/" + id + "?wait=0.2");
    CHECK(j["id"] == id);
    CHECK_FALSE(is_terminal(j["status"]));
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + id).c_str()), 204);
}

TEST_CASE("malformed wait → 400") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = run_task(cli, "hello").job["id"];
    check_problem(cli.Get(("/api/v1/jobs/" + id + "?wait=abc").c_str()), 400, "wait");
    check_problem(cli.Get(("/api/v1/jobs/" + id + "?wait=-1").c_str()), 400, "wait");
    check_problem(cli.Post("/api/v1/tasks/hello/$execute?wait=abc", "{}", "application/json"), 400, "wait");
    // The rejected $execute did not create a job.
    CHECK(get_json(cli, "/api/v1/jobs").size() == 1);
}

}  // TEST_SUITE("wait")
