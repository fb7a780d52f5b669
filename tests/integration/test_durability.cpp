// Persistence across restarts and recovery after kill -9.
#include "test_util.hpp"

#include <set>

using namespace th_test;

TEST_SUITE("durability") {

TEST_CASE("persistence: jobs and artifacts survive a clean restart") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    auto greet = run_task(cli, "greet_user", {{"name", "Alice"}});
    std::string fail_id = submit(cli, "failing_task");
    json failed = wait_job(cli, fail_id);
    json root = body_json(post_json(cli, "/api/v1/artifacts", {{"data", {{"name", "root"}}}}));
    json child =
        body_json(post_json(cli, "/api/v1/artifacts", {{"data", {{"name", "child"}}}, {"parent_id", root["id"]}}));
    json jobs_before = get_json(cli, "/api/v1/jobs");
    json artifacts_before = get_json(cli, "/api/v1/artifacts");
    REQUIRE(jobs_before.size() == 2);
    REQUIRE(artifacts_before.size() == 4);

    int old_pid = svc.host().pid();
    svc.restart();
    CHECK(svc.host().pid() != old_pid);
    auto &cli2 = svc.cli();

    CHECK(get_json(cli2, "/api/v1/jobs") == jobs_before);
    CHECK(get_json(cli2, "/api/v1/artifacts") == artifacts_before);
    json g = get_job(cli2, greet.job["id"]);
    CHECK(g["status"] == "completed");
    CHECK(g["artifact_id"] == greet.job["artifact_id"]);
    CHECK(get_artifact(cli2, g["artifact_id"]) == greet.artifact);
    json f = get_job(cli2, fail_id);
    CHECK(f["status"] == "failed");
    CHECK(f["error"] == failed["error"]);
    CHECK(f["error_traceback"] == failed["error_traceback"]);
    CHECK(get_artifact(cli2, child["id"])["parent_id"] == root["id"]);
    CHECK(get_artifact(cli2, child["id"])["level"] == 1);
    json tree = get_json(cli2, "/api/v1/artifacts/" + root["id"].get<std::string>() + "/$tree");
    REQUIRE(tree["children"].size() == 1);
    CHECK(tree["children"][0]["id"] == child["id"]);
    json filtered = get_json(cli2, "/api/v1/jobs?status_filter=failed");
    REQUIRE(filtered.size() == 1);
    CHECK(filtered[0]["id"] == fail_id);
    // The plugins' own tables persist too (count_users' seed is not repeated).
    CHECK(run_task(cli2, "count_users").artifact["data"]["result"] == json{{"user_count", 3}});
    // And the service keeps working.
    CHECK(run_task(cli2, "add", {{"a", 1}, {"b", 2}}).artifact["data"]["result"] == json{{"result", 3}});
    CHECK(get_json(cli2, "/api/v1/jobs").size() == 4);
}

TEST_CASE("$execute?wait that runs out stores the job before its 202; it survives kill -9") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    auto res = post_json(cli, "/api/v1/tasks/slow_task/$execute?wait=0.2", {{"params", {{"seconds", 30}}}});
    REQUIRE(res);
    REQUIRE(res->status == 202);
    const std::string id = body_json(res)["job_id"];
    // Listed (lists read the database): it was stored before the answer.
    json listed = get_json(cli, "/api/v1/jobs");
    REQUIRE(listed.size() == 1);
    CHECK(listed[0]["id"] == id);
    CHECK(listed[0]["status"] == "running");

    svc.crash_and_restart({});
    json j = get_job(svc.cli(), id);
    CHECK(j["status"] == "failed");
    CHECK_CONTAINS(j["error"].get<std::string>(), "host stopped");
}

TEST_CASE("quick jobs are durable when their 202 arrives, wherever they ran (kill -9 right after)") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    // Once the host has seen `add` run, it may run it on the submitting
    // thread; either way a 202 means the job is stored.
    run_task(cli, "add", {{"a", 0}, {"b", 0}});
    std::vector<std::string> ids;
    for (int i = 1; i <= 30; ++i) ids.push_back(submit(cli, "add", {{"a", i}, {"b", i}}));
    svc.crash_and_restart({});
    auto &cli2 = svc.cli();
    REQUIRE(get_json(cli2, "/api/v1/jobs?limit=1000").size() == 31);
    for (size_t i = 0; i < ids.size(); ++i) {
        json j = wait_job(cli2, ids[i]);  // a job still pending at the kill runs after the restart
        if (j["status"] == "failed") {
            // It was running on a worker at the kill.
            CHECK_CONTAINS(j["error"].get<std::string>(), "host stopped");
            continue;
        }
        REQUIRE(j["status"] == "completed");
        CHECK(get_artifact(cli2, j["artifact_id"])["data"]["result"]["result"] == 2 * static_cast<int>(i + 1));
    }
}

TEST_CASE("durability smoke: kill -9 with a backlog, restart, nothing lost") {
    Service svc(ServiceOptions().flags({"--max-concurrency", "1"}).with_file_db());
    auto &cli = svc.cli();
    // One long job first, so a job is certainly running at the kill.
    std::string running_id = submit(cli, "slow_task", {{"seconds", 30}});
    std::vector<std::string> ids;
    for (int i = 0; i < 50; ++i) ids.push_back(submit(cli, "slow_task", {{"seconds", 0.2}}));
    wait_status(cli, running_id, "running");
    // Every acknowledged job is visible before the crash.
    REQUIRE(get_json(cli, "/api/v1/jobs").size() == 51);

    svc.crash_and_restart({"--max-concurrency", "8"});
    auto &cli2 = svc.cli();

    json all = get_json(cli2, "/api/v1/jobs");
    std::set<std::string> present;
    for (const auto &j : all) present.insert(j["id"].get<std::string>());
    CHECK(present.size() == 51);
    CHECK(present.count(running_id) == 1);
    for (const auto &id : ids) CHECK_MESSAGE(present.count(id) == 1, "lost job " << id);

    // The job that was running at the kill ended failed, saying why.
    json r = get_job(cli2, running_id);
    CHECK(r["status"] == "failed");
    REQUIRE(r["error"].is_string());
    CHECK_CONTAINS(r["error"].get<std::string>(), "host stopped");
    CHECK(is_iso_utc(r["finished_at"]));

    // The pending ones run to completion after the restart.
    for (const auto &id : ids) {
        json j = wait_job(cli2, id, 20);
        CHECK_MESSAGE(j["status"] == "completed", j.dump());
        CHECK(j["error"].is_null());
    }
    // Nothing is left running or pending, and only the interrupted job failed.
    CHECK(get_json(cli2, "/api/v1/jobs?status_filter=running") == json::array());
    CHECK(get_json(cli2, "/api/v1/jobs?status_filter=pending") == json::array());
    json failed = get_json(cli2, "/api/v1/jobs?status_filter=failed");
    REQUIRE(failed.size() == 1);
    CHECK(failed[0]["id"] == running_id);
    CHECK(get_json(cli2, "/api/v1/jobs?status_filter=completed").size() == 50);
}

TEST_CASE("kill -9 right after 202s: every acknowledged job is there after restart") {
    Service svc(ServiceOptions().flags({"--max-concurrency", "1"}).with_file_db());
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(submit(cli, "hello"));
    svc.crash_and_restart({});
    auto &cli2 = svc.cli();
    for (const auto &id : ids) {
        json j = wait_job(cli2, id, 10);
        CHECK(is_terminal(j["status"]));
        CHECK_MESSAGE(
            (j["status"] == "completed" || (j["status"] == "failed" && contains(j.value("error", ""), "host stopped"))),
            j.dump());
    }
    CHECK(get_json(cli2, "/api/v1/jobs").size() == 20);
}

TEST_CASE("kill -9 while a retry-safe job runs: it runs again after the restart, the other fails") {
    Service svc(
        ServiceOptions().flags({"--max-concurrency", "2"}).with_plugin(fixture_plugin("fleet.so")).with_file_db());
    const std::string safe = submit(svc.cli(), "sleep_safe", {{"seconds", 30}});
    const std::string plain = submit(svc.cli(), "slow_task", {{"seconds", 30}});
    const std::string first_start = wait_status(svc.cli(), safe, "running")["started_at"].get<std::string>();
    wait_status(svc.cli(), plain, "running");
    // "running" shows as its start is committed; its first progress comes
    // from its code, which runs only once the start is durable.
    REQUIRE(eventually([&] { return get_job(svc.cli(), plain)["progress_message"] == "sleeping"; }));
    CHECK(get_json(svc.cli(), "/api/v1/tasks/sleep_safe")["retry_safe"] == true);
    CHECK(get_json(svc.cli(), "/api/v1/tasks/slow_task")["retry_safe"] == false);

    svc.crash_and_restart({});
    json again = wait_status(svc.cli(), safe, "running");
    CHECK(again["started_at"].get<std::string>() > first_start);  // started anew
    CHECK(again["error"].is_null());
    CHECK(again["attempt"] == 2);
    REQUIRE(again["attempts"].size() == 1);
    CHECK(again["attempts"][0]["error"] == "the host stopped while this job was running");
    CHECK(again["attempts"][0]["started_at"] == first_start);
    json failed = get_job(svc.cli(), plain);
    CHECK(failed["status"] == "failed");
    CHECK_CONTAINS(failed["error"].get<std::string>(), "host stopped");
    CHECK_STATUS(svc.cli().Post("/api/v1/jobs/" + safe + "/$cancel"), 202);
    CHECK(wait_job(svc.cli(), safe)["status"] == "canceled");
}

TEST_CASE("SIGTERM with queued jobs: they run after the restart") {
    Service svc(ServiceOptions().flags({"--max-concurrency", "1"}).with_file_db());
    auto &cli = svc.cli();
    std::string first = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, first, "running");
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(submit(cli, "hello"));
    svc.restart();  // SIGTERM: the running job is asked to cancel, the queued ones stay pending
    auto &cli2 = svc.cli();
    for (const auto &id : ids) CHECK(wait_job(cli2, id)["status"] == "completed");
    json r = get_job(cli2, first);
    CHECK(is_terminal(r["status"]));
    CHECK(r["status"] != "completed");
}

TEST_CASE("after a crash, a pending job whose task has gone fails, saying so") {
    Service svc(ServiceOptions().flags({"--max-concurrency", "1"}).with_file_db());
    auto &cli = svc.cli();
    std::string running = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, running, "running");
    std::string orphan = submit(cli, "add", {{"a", 1}, {"b", 2}});
    std::string kept = submit(cli, "hello");
    svc.kill9();
    fs::remove(svc.plugins_dir() / "math.so");
    svc.crash_and_restart({"--max-concurrency", "1"});
    auto &cli2 = svc.cli();
    json o = wait_job(cli2, orphan);
    CHECK(o["status"] == "failed");
    REQUIRE(o["error"].is_string());
    CHECK_CONTAINS(o["error"].get<std::string>(), "add");
    CHECK_CONTAINS(o["error"].get<std::string>(), "no longer registered");
    CHECK(wait_job(cli2, kept)["status"] == "completed");
    CHECK(get_job(cli2, running)["status"] == "failed");
}

}  // TEST_SUITE("durability")
