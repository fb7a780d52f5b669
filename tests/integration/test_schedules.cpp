// Recurring jobs: schedules over HTTP, their runs, catch-up after downtime,
// and the schedules plugins declare (the SDK's .every()).
// Runs on SQLite (ctest integration) and on PostgreSQL (integration-postgres,
// where with_file_db() is a schema of its own).
#include <set>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace th_test;

namespace {

const std::string kSchedules = "/api/v1/schedules";

// POST /api/v1/schedules; REQUIREs 201 and returns the schedule.
json create_schedule(httplib::Client &cli, const json &body) {
    auto res = post_json(cli, kSchedules, body);
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 201);
    return body_json(res);
}

// The jobs a schedule made, oldest first.
std::vector<json> runs_of(httplib::Client &cli, const std::string &schedule_id) {
    std::vector<json> out;
    for (const json &job : get_json(cli, "/api/v1/jobs?limit=1000"))
        if (job["schedule_id"] == schedule_id) out.insert(out.begin(), job);
    return out;
}

double metric(httplib::Client &cli, const std::string &name) {
    auto res = cli.Get("/metrics");
    REQUIRE(res);
    const std::string line = "\n" + name + " ";
    const size_t at = res->body.find(line);
    REQUIRE_MESSAGE(at != std::string::npos, name << " not in /metrics");
    return std::stod(res->body.substr(at + line.size()));
}

}  // namespace

TEST_SUITE("lifecycle") {

TEST_CASE("schedules: created, read, edited, paused, triggered and deleted over HTTP; bad input names the problem") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    CHECK(get_json(cli, kSchedules) == json::array());

    const int64_t before = wall_us();
    json s = create_schedule(
        cli, {{"task", "add"}, {"params", {{"a", 2}, {"b", 3}}}, {"cron", "0 9 * * MON-FRI"}, {"tz", "Europe/Oslo"}});
    INFO(s.dump());
    const std::string id = s["id"];
    CHECK(is_ulid(id));
    CHECK(s["task_name"] == "add");
    CHECK(s["params"] == json{{"a", 2}, {"b", 3}});
    CHECK(s["tz"] == "Europe/Oslo");
    CHECK(s["enabled"] == true);
    CHECK(s["source"] == "api");
    CHECK(s["runs"] == 0);
    CHECK(s["last_run_at"].is_null());
    // 09:00 in Oslo is 08:00 or 07:00 UTC, on a weekday, within a week.
    const int64_t next = iso_us(s["next_run_at"]);
    CHECK(next > before);
    CHECK(next - before <= 7 * 86400LL * 1'000'000);
    const std::string next_text = s["next_run_at"];
    CHECK((next_text.find("T08:00:00.000000Z") != std::string::npos ||
           next_text.find("T07:00:00.000000Z") != std::string::npos));
    CHECK(get_json(cli, kSchedules + "/" + id) == s);
    CHECK(get_json(cli, kSchedules).size() == 1);

    // Paused: no next run; resumed: the next one from now.
    json paused = body_json(put_json(cli, kSchedules + "/" + id, {{"enabled", false}}));
    CHECK(paused["enabled"] == false);
    CHECK(paused["next_run_at"].is_null());
    json edited =
        body_json(put_json(cli, kSchedules + "/" + id, {{"enabled", true}, {"cron", "@daily"}, {"tz", "UTC"}}));
    CHECK(edited["cron"] == "@daily");
    CHECK(std::string(edited["next_run_at"]).find("T00:00:00.000000Z") != std::string::npos);
    CHECK(edited["params"] == json{{"a", 2}, {"b", 3}});  // what was not sent stays

    // Triggered: a job now, linked, and the schedule's next run unchanged.
    auto triggered = cli.Post((kSchedules + "/" + id + "/$trigger").c_str());
    REQUIRE(triggered);
    REQUIRE(triggered->status == 202);
    const std::string job_id = body_json(triggered)["job_id"];
    CHECK(triggered->get_header_value("Location") == "/api/v1/jobs/" + job_id);
    json job = wait_job(cli, job_id);
    CHECK(job["status"] == "completed");
    CHECK(job["schedule_id"] == id);
    CHECK(get_artifact(cli, job["artifact_id"])["data"]["result"] == json{{"result", 5}});
    json after = get_json(cli, kSchedules + "/" + id);
    CHECK(after["runs"] == 1);
    CHECK(after["last_job_id"] == job_id);
    CHECK(after["next_run_at"] == edited["next_run_at"]);
    // An ordinary job is not linked to any.
    CHECK(get_job(cli, submit(cli, "add", {{"a", 1}, {"b", 1}}))["schedule_id"].is_null());

    // Bad input: 400 (404 for a task no host has), each naming the problem.
    check_problem(post_json(cli, kSchedules, {{"cron", "* * * * *"}}), 400, "task is required");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}}), 400, "cron is required");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "61 * * * *"}}), 400,
                  "cron field 'minute': 61 is out of range 0-59");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "* * *"}}), 400,
                  "cron expression needs 5 or 6 fields, got 3");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "@reboot"}}), 400,
                  "unknown cron macro '@reboot'");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "@daily"}, {"tz", "Mars/Base"}}), 400,
                  "unknown time zone 'Mars/Base'");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "0 0 30 2 *"}}), 400, "never fires");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "@daily"}, {"params", {{"a", "x"}}}}), 400,
                  "Invalid params for task 'add'");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "@daily"}, {"params", json::array()}}), 400,
                  "params must be a JSON object");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"cron", "@daily"}, {"enabled", "yes"}}), 400,
                  "enabled must be true or false");
    check_problem(post_json(cli, kSchedules, {{"task", "add"}, {"schedule", "@daily"}}), 400,
                  "unknown member 'schedule'");
    check_problem(post_json(cli, kSchedules, {{"task", "no_such_task"}, {"cron", "@daily"}}), 404,
                  "Task 'no_such_task' not found");
    check_problem(put_json(cli, kSchedules + "/" + id, {{"cron", "nonsense"}}), 400, "cron");
    check_problem(cli.Get((kSchedules + "/not-a-ulid").c_str()), 400, "Invalid ULID format");
    const std::string missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    check_problem(cli.Get((kSchedules + "/" + missing).c_str()), 404, "Schedule with id " + missing + " not found");
    check_problem(put_json(cli, kSchedules + "/" + missing, {{"enabled", false}}), 404);
    check_problem(cli.Post((kSchedules + "/" + missing + "/$trigger").c_str()), 404);
    check_problem(cli.Patch((kSchedules + "/" + id).c_str(), "{}", "application/json"), 405);
    // The keys of schedules' runs are the host's own.
    check_problem(cli.Post("/api/v1/tasks/add/$execute", {{"Idempotency-Key", "schedule:" + id + ":0"}},
                           R"({"params": {"a": 1, "b": 1}})", "application/json"),
                  400, "must not start with 'schedule:'");
    // A failed edit changed nothing.
    CHECK(get_json(cli, kSchedules + "/" + id)["cron"] == "@daily");

    auto deleted = cli.Delete((kSchedules + "/" + id).c_str());
    REQUIRE(deleted);
    CHECK(deleted->status == 204);
    check_problem(cli.Get((kSchedules + "/" + id).c_str()), 404);
    check_problem(cli.Delete((kSchedules + "/" + id).c_str()), 404);
    // Its jobs stay, still naming it.
    CHECK(get_job(cli, job_id)["schedule_id"] == id);
}

TEST_CASE("schedules: each run is a job naming its schedule, one per fire time, made on time") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    json s = create_schedule(cli, {{"task", "add"}, {"params", {{"a", 1}, {"b", 2}}}, {"cron", "* * * * * *"}});
    const std::string id = s["id"];
    REQUIRE(eventually([&] { return runs_of(cli, id).size() >= 3; }, 8000ms));
    // Paused: no run after the one that may be under way (its job stands).
    json paused = body_json(put_json(cli, kSchedules + "/" + id, {{"enabled", false}}));
    CHECK(paused["next_run_at"].is_null());
    std::this_thread::sleep_for(1500ms);  // the absence of an event: nothing to wait for
    const std::vector<json> runs = runs_of(cli, id);
    std::set<int64_t> seconds;
    for (const json &job : runs) {
        INFO(job.dump());
        // Made at (just after) its whole second, the run's time: one a second.
        CHECK(seconds.insert(iso_us(job["submitted_at"]) / 1'000'000).second);
        CHECK(job["task_name"] == "add");
        CHECK(wait_job(cli, job["id"])["status"] == "completed");
    }
    json after = get_json(cli, kSchedules + "/" + id);
    CHECK(after["runs"] == runs.size());
    CHECK(after["last_job_id"] == runs.back()["id"]);
    CHECK(after["last_error"].is_null());
    CHECK(metric(cli, "taskhost_schedule_runs_total") == static_cast<double>(runs.size()));
    CHECK(get_json(cli, "/api/v1/system")["schedules"]["runs_made"] == runs.size());
    // Paused means paused: a second and a half later, nothing new.
    std::this_thread::sleep_for(1500ms);
    CHECK(runs_of(cli, id).size() == runs.size());
}

TEST_CASE("schedules: kept across a restart; a host that was down makes one catch-up run, not one per missed run") {
    Service svc(ServiceOptions().with_file_db());
    json s = create_schedule(svc.cli(), {{"task", "add"}, {"params", {{"a", 4}, {"b", 4}}}, {"cron", "@hourly"}});
    const std::string id = s["id"];
    // Down for three hours: its next run was three hours ago.
    svc.host().stop();
    const int64_t missed = wall_us() - 3 * 3600LL * 1'000'000;
    svc.sql("UPDATE schedules SET next_run_at = " + std::to_string(missed) + " WHERE id = '" + id + "'");
    svc.restart();
    auto &cli = svc.cli();
    REQUIRE(eventually([&] { return get_json(cli, kSchedules + "/" + id)["runs"] == 1; }, 5000ms));
    json after = get_json(cli, kSchedules + "/" + id);
    INFO(after.dump());
    CHECK(after["enabled"] == true);
    CHECK(after["last_error"].is_null());
    // The next run is the next whole hour from now, not one of the missed.
    const int64_t next = iso_us(after["next_run_at"]);
    CHECK(next > wall_us());
    CHECK(next % (3600LL * 1'000'000) == 0);
    CHECK(next - wall_us() <= 3600LL * 1'000'000);
    std::vector<json> runs = runs_of(cli, id);
    REQUIRE(runs.size() == 1);
    CHECK(wait_job(cli, runs[0]["id"])["status"] == "completed");
    CHECK(metric(cli, "taskhost_schedule_catch_ups_total") == 1);
    CHECK(get_json(cli, "/api/v1/system")["schedules"]["runs_caught_up"] == 1);

    // Stopped just after making a run's job, before moving the schedule on:
    // after a restart the same run finds the same job (its key, which never
    // expires: --idempotency-ttl 1), not a second one.
    svc.host().stop();
    svc.sql("UPDATE schedules SET next_run_at = " + std::to_string(missed) + " WHERE id = '" + id + "'");
    std::this_thread::sleep_for(1100ms);  // past the key TTL below
    svc.restart({"--idempotency-ttl", "1"});
    REQUIRE(eventually([&] { return iso_us(get_json(svc.cli(), kSchedules + "/" + id)["next_run_at"]) > wall_us(); },
                       5000ms));
    CHECK(runs_of(svc.cli(), id).size() == 1);
    json again = get_json(svc.cli(), kSchedules + "/" + id);
    CHECK(again["last_job_id"] == runs[0]["id"]);
    CHECK(again["runs"] == 1);  // the job was made before: not counted twice
    CHECK(iso_us(again["last_run_at"]) > iso_us(after["last_run_at"]));
}

TEST_CASE("schedules: a run that cannot make its job says why and the schedule moves on") {
    Service svc(ServiceOptions().with_file_db().with_plugin(fixture_plugin("ticker_v3.so")));
    auto &cli = svc.cli();
    json s = create_schedule(cli, {{"task", "tock"}, {"cron", "* * * * * *"}});
    const std::string id = s["id"];
    // Its plugin removed: each run fails, saying so, and the next one comes.
    fs::remove(svc.plugins_dir() / "ticker_v3.so");
    REQUIRE(cli.Post("/api/v1/plugins/$reload")->status == 200);
    REQUIRE(eventually([&] { return !get_json(cli, kSchedules + "/" + id)["last_error"].is_null(); }, 5000ms));
    json after = get_json(cli, kSchedules + "/" + id);
    INFO(after.dump());
    CHECK(std::string(after["last_error"]).find("Task 'tock' not found") != std::string::npos);
    CHECK(iso_us(after["next_run_at"]) > iso_us(after["last_run_at"]));
    CHECK(metric(cli, "taskhost_schedule_run_failures_total") >= 1);
}

TEST_CASE("schedules: declared by a plugin (.every), paused by people, following the plugin across reloads") {
    Service svc(ServiceOptions().with_file_db());
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("ticker_v1.so"), "ticker.so");
    REQUIRE(cli.Post("/api/v1/plugins/$reload")->status == 200);
    json all = get_json(cli, kSchedules);
    REQUIRE(all.size() == 1);
    json s = all[0];
    INFO(s.dump());
    const std::string id = s["id"];
    CHECK(s["task_name"] == "tick");
    CHECK(s["cron"] == "* * * * * *");
    CHECK(s["tz"] == "UTC");
    CHECK(s["source"] == "plugin");
    CHECK(s["params"] == json::object());
    CHECK(get_json(cli, "/api/v1/tasks/tick")["every"] == json{{"cron", "* * * * * *"}, {"tz", "UTC"}});
    CHECK(get_json(cli, "/api/v1/tasks/tock")["every"].is_null());
    REQUIRE(eventually([&] { return !runs_of(cli, id).empty(); }, 5000ms));
    json first = wait_job(cli, runs_of(cli, id)[0]["id"]);
    CHECK(first["status"] == "completed");
    CHECK(get_artifact(cli, first["artifact_id"])["data"]["result"] == json{{"tick", 1}});

    // The plugin owns its rule; people may pause it and give it params.
    check_problem(put_json(cli, kSchedules + "/" + id, {{"cron", "@daily"}}), 409, "declared by the plugin");
    check_problem(cli.Delete((kSchedules + "/" + id).c_str()), 409, "disable it instead");
    json paused = body_json(put_json(cli, kSchedules + "/" + id, {{"enabled", false}, {"params", {{"n", 7}}}}));
    CHECK(paused["enabled"] == false);
    CHECK(paused["params"] == json{{"n", 7}});

    // A new version changes the rule: the same schedule, still paused.
    deploy(svc.plugins_dir(), fixture_plugin("ticker_v2.so"), "ticker.so");
    REQUIRE(cli.Post("/api/v1/plugins/$reload")->status == 200);
    all = get_json(cli, kSchedules);
    REQUIRE(all.size() == 1);
    CHECK(all[0]["id"] == id);
    CHECK(all[0]["cron"] == "*/2 * * * * *");
    CHECK(all[0]["tz"] == "Europe/Oslo");
    CHECK(all[0]["enabled"] == false);
    CHECK(all[0]["params"] == json{{"n", 7}});
    // Kept across a restart, and not declared twice.
    svc.restart();
    CHECK(get_json(svc.cli(), kSchedules).size() == 1);

    // A version without it: gone.
    deploy(svc.plugins_dir(), fixture_plugin("ticker_v3.so"), "ticker.so");
    REQUIRE(svc.cli().Post("/api/v1/plugins/$reload")->status == 200);
    CHECK(get_json(svc.cli(), kSchedules) == json::array());

    // The plugin removed: its schedule stays (another host may have it)
    // until someone deletes it, which is allowed once no host has the task.
    deploy(svc.plugins_dir(), fixture_plugin("ticker_v1.so"), "ticker.so");
    REQUIRE(svc.cli().Post("/api/v1/plugins/$reload")->status == 200);
    all = get_json(svc.cli(), kSchedules);
    REQUIRE(all.size() == 1);
    fs::remove(svc.plugins_dir() / "ticker.so");
    REQUIRE(svc.cli().Post("/api/v1/plugins/$reload")->status == 200);
    CHECK(get_json(svc.cli(), kSchedules).size() == 1);
    auto deleted = svc.cli().Delete((kSchedules + "/" + std::string(all[0]["id"])).c_str());
    REQUIRE(deleted);
    CHECK(deleted->status == 204);
}

}  // TEST_SUITE("lifecycle")
