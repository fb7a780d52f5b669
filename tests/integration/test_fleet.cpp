// Several hosts on one PostgreSQL database, behaving as one service: each
// job runs exactly once whichever host took it, a job is read, waited on,
// streamed, canceled and deleted through any host, and the queued jobs of a
// host that dies run on the others (ctest entry integration-postgres).
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "pg_cluster.hpp"
#include "test_util.hpp"

using namespace th_test;

namespace {

ServiceOptions fleet_host(const PgSchema &schema, const std::string &id, std::vector<std::string> files,
                          std::vector<std::string> more = {}) {
    auto options = ServiceOptions::examples(std::move(files)).with_db_url(schema.url()).flags({"--host-id", id});
    return options.flags(std::move(more));
}

std::string job_column(const PgSchema &schema, const std::string &id, const std::string &column) {
    return schema.query("SELECT " + column + " FROM jobs WHERE id = '" + id + "'");
}

}  // namespace

TEST_SUITE("postgres") {

TEST_CASE("fleet: 3,000 jobs over three hosts, and 600 no host holds, each run exactly once, read from every host") {
    PgSchema schema;
    schema.query("CREATE TABLE fleet_runs (job_id text NOT NULL)");
    std::vector<std::unique_ptr<Service>> hosts;
    for (const char *id : {"host-a", "host-b", "host-c"})
        hosts.push_back(
            std::make_unique<Service>(fleet_host(schema, id, {"demo.so"}).with_plugin(fixture_plugin("fleet.so"))));

    // 600 jobs no host holds (as a lost host leaves them): the hosts claim
    // them between them, told by a notice, while the submits go on.
    constexpr int kUnheld = 600;
    schema.query(
        "INSERT INTO jobs (id, task_name, params, status, submitted_at) SELECT 'u' || lpad(n::text, 25, '0'), "
        "'record_run', '{\"seconds\": 0}', 'pending', 1 FROM generate_series(1, " +
        std::to_string(kUnheld) + ") AS n");
    schema.query("SELECT pg_notify('taskhost', 'w:')");

    constexpr int kJobs = 3000, kClients = 6;
    std::vector<std::string> ids(kJobs);
    std::atomic<int> next{0}, refused{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
        clients.emplace_back([&] {
            std::vector<std::unique_ptr<httplib::Client>> to;
            for (auto &h : hosts) to.push_back(std::make_unique<httplib::Client>("127.0.0.1", h->host().port()));
            for (int i; (i = next.fetch_add(1)) < kJobs;) {
                // Round-robin over the hosts; a full queue (503) is retried.
                for (int attempt = 0; attempt < 200; ++attempt) {
                    auto res = to[static_cast<size_t>(i) % to.size()]->Post(
                        "/api/v1/tasks/record_run/$execute", R"({"params": {"seconds": 0}})", "application/json");
                    if (res && res->status == 202) {
                        ids[static_cast<size_t>(i)] = json::parse(res->body)["job_id"].get<std::string>();
                        break;
                    }
                    if (!res || res->status != 503) {
                        refused.fetch_add(1);
                        break;
                    }
                    std::this_thread::sleep_for(std::chrono::milliseconds(10));
                }
            }
        });
    for (auto &t : clients) t.join();
    REQUIRE(refused.load() == 0);
    for (const auto &id : ids) REQUIRE(is_ulid(id));

    const std::string all = std::to_string(kJobs + kUnheld);
    REQUIRE(eventually([&] { return schema.query("SELECT count(*) FROM jobs WHERE status = 'completed'") == all; },
                       std::chrono::seconds(120), std::chrono::milliseconds(100)));
    CHECK(schema.query("SELECT count(*) FROM jobs") == all);
    // Once each: by the hosts' rows, and by the task's own hand.
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE attempts <> 1") == "0");
    CHECK(schema.query("SELECT count(*) FROM fleet_runs") == all);
    CHECK(schema.query("SELECT count(DISTINCT job_id) FROM fleet_runs") == all);
    // The unheld ones were shared out, not all taken by one host.
    CHECK(std::stoi(schema.query("SELECT count(DISTINCT run_by) FROM jobs WHERE id LIKE 'u%'")) >= 2);
    CHECK(schema.query("SELECT count(*) FROM fleet_runs r LEFT JOIN jobs j ON j.id = r.job_id WHERE j.id IS NULL") ==
          "0");
    CHECK(schema.query("SELECT count(DISTINCT run_by) FROM jobs") == "3");

    // Each job and its result read the same from every host.
    for (size_t i = 0; i < ids.size(); i += 250) {
        CAPTURE(ids[i]);
        std::string artifact;
        for (auto &h : hosts) {
            json job = get_job(h->cli(), ids[i]);
            CHECK(job["status"] == "completed");
            if (artifact.empty()) artifact = job["artifact_id"].get<std::string>();
            CHECK(job["artifact_id"] == artifact);
            CHECK(get_artifact(h->cli(), artifact)["data"]["result"]["job_id"] == ids[i]);
        }
    }
    for (auto &h : hosts) CHECK(get_json(h->cli(), "/api/v1/jobs?status_filter=pending").empty());
}

// Also under ThreadSanitizer (ctest integration-concurrency): the listener, claimer and waiters.
TEST_CASE("fleet: ?wait, $stream, $cancel and DELETE on one host act on a job another host runs" *
          doctest::test_suite("concurrency")) {
    PgSchema schema;
    Service a(fleet_host(schema, "host-a", {"demo.so"}));
    Service b(fleet_host(schema, "host-b", {"demo.so"}, {"--max-concurrency", "1"}));

    SUBCASE("?wait on host-a returns when host-b finishes the job") {
        const std::string id = submit(b.cli(), "slow_task", {{"seconds", 0.5}});
        const auto started = std::chrono::steady_clock::now();
        json done = body_json(a.cli().Get("/api/v1/jobs/" + id + "?wait=20"));
        CHECK(done["status"] == "completed");
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));  // woken, not timed out
        // Woken by host-b's notice at its commit, not by the one-second
        // reread. (Not timed under sanitizers: they slow every step.)
        const auto late_us = std::stoll(
            job_column(schema, id, "(extract(epoch from clock_timestamp()) * 1000000)::bigint - finished_at"));
#if !defined(TH_TEST_TSAN) && !defined(TH_TEST_ASAN)
        CHECK_MESSAGE(late_us < 400'000, "answered " << late_us << " µs after the job ended");
#endif
        MESSAGE("?wait on host-a answered " << late_us << " µs after host-b ended the job");
        CHECK(job_column(schema, id, "run_by") == "host-b");
        CHECK(get_artifact(a.cli(), done["artifact_id"])["data"]["result"]["slept"] == 0.5);
    }
    SUBCASE("$stream on host-a follows the job's progress on host-b to its end") {
        const std::string id = submit(b.cli(), "slow_task", {{"seconds", 1.5}});
        auto events = sse_events(read_sse(a.cli(), "/api/v1/jobs/" + id + "/$stream"));
        REQUIRE(events.size() >= 2);
        CHECK(events.back()["status"] == "completed");
        bool saw_progress = false;
        for (const auto &e : events)
            if (e["status"] == "running" && e["progress"].is_number() && e["progress"] > 0) saw_progress = true;
        CHECK(saw_progress);
    }
    SUBCASE("$cancel on host-a stops the job running on host-b; a pending one is canceled at once") {
        const std::string running = submit(b.cli(), "slow_task", {{"seconds", 30}});
        wait_status(b.cli(), running, "running");
        const std::string queued = submit(b.cli(), "slow_task", {{"seconds", 30}});  // behind it: one worker
        CHECK(get_job(a.cli(), queued)["status"] == "pending");

        auto pending_cancel = a.cli().Post("/api/v1/jobs/" + queued + "/$cancel");
        CHECK_STATUS(pending_cancel, 200);
        CHECK(body_json(pending_cancel)["status"] == "canceled");
        CHECK(eventually([&] { return get_job(b.cli(), queued)["status"] == "canceled"; }));

        auto running_cancel = a.cli().Post("/api/v1/jobs/" + running + "/$cancel");
        CHECK_STATUS(running_cancel, 202);
        CHECK(body_json(running_cancel)["cancel_requested"] == true);
        json ended = wait_job(a.cli(), running, 10);
        CHECK(ended["status"] == "canceled");
        CHECK(get_job(b.cli(), running)["status"] == "canceled");
        CHECK(job_column(schema, queued, "attempts") == "0");  // never ran
    }
    SUBCASE("DELETE on host-a removes a job running on host-b, which stops it") {
        const std::string id = submit(b.cli(), "slow_task", {{"seconds", 30}});
        wait_status(b.cli(), id, "running");
        CHECK_STATUS(a.cli().Delete("/api/v1/jobs/" + id), 204);
        CHECK(eventually([&] {
            auto res = b.cli().Get("/api/v1/jobs/" + id);
            return res && res->status == 404;
        }));
        // Its worker is free again: the next job runs at once.
        CHECK(run_task(b.cli(), "slow_task", {{"seconds", 0}}).job["status"] == "completed");
    }
}

TEST_CASE("fleet: kill -9 of a host: its running job fails after the lease (a retry-safe one runs again), its "
          "queued jobs run on another") {
    PgSchema schema;
    Service a(fleet_host(schema, "host-a", {"demo.so"}, {"--lease-s", "1", "--max-concurrency", "2"})
                  .with_plugin(fixture_plugin("fleet.so")));
    Service b(fleet_host(schema, "host-b", {"demo.so"}, {"--lease-s", "1"}).with_plugin(fixture_plugin("fleet.so")));
    const std::string running = submit(a.cli(), "slow_task", {{"seconds", 60}});
    const std::string safe = submit(a.cli(), "sleep_safe", {{"seconds", 10}});
    wait_status(a.cli(), running, "running");
    wait_status(a.cli(), safe, "running");
    std::vector<std::string> queued;
    for (int i = 0; i < 8; ++i) queued.push_back(submit(a.cli(), "slow_task", {{"seconds", 0.05}}));
    CHECK(get_job(b.cli(), queued.back())["status"] == "pending");  // host-a is alive: host-b leaves them

    // Load on the survivor while host-a dies.
    std::atomic<bool> stop{false};
    std::atomic<int> done_under_load{0};
    std::thread load([&] {
        httplib::Client cli("127.0.0.1", b.host().port());
        while (!stop.load()) {
            auto res = cli.Post("/api/v1/tasks/hello/$execute?wait=10", "{}", "application/json");
            if (res && res->status == 200) done_under_load.fetch_add(1);
        }
    });
    REQUIRE(get_job(a.cli(), safe)["status"] == "running");  // else this test says nothing of it
    a.kill9();
    json lost = wait_job(b.cli(), running, 20);
    CHECK(lost["status"] == "failed");
    CHECK(contains(lost["error"].get<std::string>(), "host host-a was lost while running this job"));
    json again = wait_job(b.cli(), safe, 60);
    CHECK(again["status"] == "completed");
    CHECK(again["run_by"] == "host-b");
    CHECK(job_column(schema, safe, "attempts") == "2");
    // The lost attempt is logged: when, why, and on which host.
    CHECK(again["attempt"] == 2);
    REQUIRE(again["attempts"].size() == 1);
    CHECK(again["attempts"][0]["attempt"] == 1);
    CHECK(again["attempts"][0]["run_by"] == "host-a");
    CHECK(again["attempts"][0]["error"] == "host host-a was lost while running this job");
    CHECK(!again["attempts"][0]["started_at"].is_null());
    for (const auto &id : queued) {
        CAPTURE(id);
        CHECK(wait_job(b.cli(), id, 20)["status"] == "completed");
        CHECK(job_column(schema, id, "run_by") == "host-b");
        CHECK(job_column(schema, id, "attempts") == "1");
    }
    stop.store(true);
    load.join();
    CHECK(done_under_load.load() > 0);
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')") == "0");
}

TEST_CASE("fleet: each run of a schedule is made once by one of three hosts that all fire it") {
    PgSchema schema;
    schema.query("CREATE TABLE fleet_runs (job_id text NOT NULL)");
    std::vector<std::unique_ptr<Service>> hosts;
    for (const char *id : {"host-a", "host-b", "host-c"})
        hosts.push_back(
            std::make_unique<Service>(fleet_host(schema, id, {"demo.so"}).with_plugin(fixture_plugin("fleet.so"))));
    auto made = post_json(hosts[1]->cli(), "/api/v1/schedules",
                          {{"task", "record_run"}, {"params", {{"seconds", 0}}}, {"cron", "* * * * * *"}});
    REQUIRE(made);
    REQUIRE(made->status == 201);
    const std::string id = body_json(made)["id"];
    const std::string of_it = " FROM jobs WHERE schedule_id = '" + id + "'";
    REQUIRE(eventually([&] { return std::stoi(schema.query("SELECT count(*)" + of_it)) >= 4; },
                       std::chrono::seconds(15), std::chrono::milliseconds(100)));
    REQUIRE(put_json(hosts[2]->cli(), "/api/v1/schedules/" + id, {{"enabled", false}})->status == 200);
    // A run under way as it was paused may still make its job.
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    REQUIRE(eventually([&] { return schema.query("SELECT count(*)" + of_it + " AND status <> 'completed'") == "0"; },
                       std::chrono::seconds(15), std::chrono::milliseconds(50)));
    const std::string jobs = schema.query("SELECT count(*)" + of_it);
    INFO(jobs << " jobs");
    // One job per run (second), each run once, and the schedule counted each.
    CHECK(schema.query("SELECT count(DISTINCT submitted_at / 1000000)" + of_it) == jobs);
    CHECK(schema.query("SELECT count(DISTINCT idempotency_key)" + of_it) == jobs);
    CHECK(schema.query("SELECT count(*) FROM fleet_runs r JOIN jobs j ON j.id = r.job_id WHERE j.schedule_id = '" + id +
                       "'") == jobs);
    CHECK(schema.query("SELECT runs FROM schedules WHERE id = '" + id + "'") == jobs);
    // Every host says the same of it.
    for (auto &h : hosts) CHECK(get_json(h->cli(), "/api/v1/schedules/" + id)["runs"] == std::stoi(jobs));
}

}  // TEST_SUITE("postgres")

TEST_SUITE("postgres") {

TEST_CASE("fleet: a rolling plugin reload over three hosts fails no request; jobs run the major they came for") {
    PgSchema schema;
    std::vector<std::unique_ptr<Service>> hosts;
    for (const char *id : {"host-a", "host-b", "host-c"}) {
        hosts.push_back(std::make_unique<Service>(fleet_host(schema, id, {"demo.so"})));
        deploy(hosts.back()->plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
        CHECK_STATUS(hosts.back()->cli().Post("/api/v1/plugins/$reload"), 200);
    }
    // Requests throughout, round-robin: each must answer 200, completed.
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::mutex mu;
    std::string first_failure;
    std::vector<std::thread> clients;
    for (int c = 0; c < 3; ++c)
        clients.emplace_back([&, c] {
            std::vector<std::unique_ptr<httplib::Client>> to;
            for (auto &h : hosts) to.push_back(std::make_unique<httplib::Client>("127.0.0.1", h->host().port()));
            for (size_t i = static_cast<size_t>(c); !stop.load(); ++i) {
                auto res = to[i % to.size()]->Post("/api/v1/tasks/slow_version/$execute?wait=10",
                                                   R"({"params": {"seconds": 0.02}})", "application/json");
                if (res && res->status == 200 && json::parse(res->body)["status"] == "completed") {
                    ok.fetch_add(1);
                    continue;
                }
                failed.fetch_add(1);
                std::lock_guard lock(mu);
                if (first_failure.empty())
                    first_failure = res ? std::to_string(res->status) + " " + res->body : "no response";
            }
        });
    auto answered = [&](int more) {
        const int target = ok.load() + failed.load() + more;
        return eventually([&] { return ok.load() + failed.load() >= target; });
    };
    REQUIRE(answered(20));
    for (auto &h : hosts) {  // one host at a time, with requests in between
        deploy(h->plugins_dir(), fixture_plugin("versioned_v2.so"), "versioned.so");
        json report = body_json(h->cli().Post("/api/v1/plugins/$reload"));
        CHECK(contains(report.dump(), "versioned.so"));
        REQUIRE(answered(20));
    }
    stop.store(true);
    for (auto &t : clients) t.join();
    CHECK_MESSAGE(failed.load() == 0, first_failure);
    CHECK(ok.load() >= 80);
    // Each job ran on the major version it was accepted for; both ran.
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE plugin_version IS NULL OR ran_version IS NULL") == "0");
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE split_part(plugin_version, '.', 1) <> "
                       "split_part(ran_version, '.', 1)") == "0");
    CHECK(schema.query("SELECT string_agg(DISTINCT ran_version, ',' ORDER BY ran_version) FROM jobs") == "1.0.0,2.0.0");

    // Now that every host has 2.0.0, a job no host holds that was accepted
    // for 1.x waits for a host with 1.x; one for 2.x runs.
    auto unheld = [&](const std::string &version) {
        const std::string id = "u" + std::string(25, version[0]);
        schema.query("INSERT INTO jobs (id, task_name, params, status, submitted_at, plugin_version) VALUES ('" + id +
                     "', 'which_version', '{}', 'pending', 1, '" + version + "')");
        return id;
    };
    // for_1's id sorts first: hosts claim oldest first, so had it been
    // claimable it would have been taken no later than for_2.
    const std::string for_1 = unheld("1.0.0"), for_2 = unheld("2.0.0");
    schema.query("SELECT pg_notify('taskhost', 'w:')");
    CHECK(eventually([&] { return job_column(schema, for_2, "status") == "completed"; }));
    CHECK(job_column(schema, for_2, "ran_version") == "2.0.0");
    CHECK(job_column(schema, for_1, "status") == "pending");
    CHECK(job_column(schema, for_1, "queued_by").empty());
}

TEST_CASE("fleet: scheduled jobs run at their time on the host that has them, and on another if theirs is lost") {
    PgSchema schema;
    auto a = std::make_unique<Service>(fleet_host(schema, "host-a", {"demo.so"}, {"--lease-s", "1"}));
    Service b(
        fleet_host(schema, "host-b", {"demo.so"}, {"--lease-s", "1"}).with_plugin(fixture_plugin("versioned_v1.so")));
    REQUIRE(eventually([&] { return a->cli().Get("/api/v1/tasks/which_version")->status == 200; }));
    auto submit_later = [](httplib::Client &cli, const std::string &task, double delay) {
        auto res = post_json(cli, "/api/v1/tasks/" + task + "/$execute", {{"delay_s", delay}, {"priority", 2}});
        REQUIRE(res);
        REQUIRE_MESSAGE(res->status == 202, res->body);
        return body_json(res)["job_id"].get<std::string>();
    };
    // Held by host-a; host-a dies before its time.
    const std::string held = submit_later(a->cli(), "greet_user", 2.0);
    // A task only host-b has, submitted to host-a: offered to the fleet,
    // claimed by host-b once due.
    const std::string offered = submit_later(a->cli(), "which_version", 1.0);
    CHECK(get_job(b.cli(), held)["status"] == "scheduled");
    CHECK(get_job(b.cli(), offered)["status"] == "scheduled");
    CHECK(job_column(schema, held, "queued_by") == "host-a");
    a->kill9();

    for (const auto &id : {offered, held}) {
        CAPTURE(id);
        json job = wait_job(b.cli(), id, 20);
        CHECK(job["status"] == "completed");
        CHECK(job["run_by"] == "host-b");
        CHECK(job["priority"] == 2);
        CHECK(job_column(schema, id, "attempts") == "1");
        // Never before its time (both times are host clocks' µs).
        CHECK(std::stoll(job_column(schema, id, "started_at")) >= std::stoll(job_column(schema, id, "run_at")));
    }
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE status IN ('scheduled', 'pending', 'running')") == "0");
}

TEST_CASE("fleet: a job waiting for its next attempt on a host that dies gets it on another host") {
    PgSchema schema;
    TempDir counters;
    auto a = std::make_unique<Service>(
        fleet_host(schema, "host-a", {"demo.so"}, {"--lease-s", "1"}).with_plugin(fixture_plugin("flaky.so")));
    Service b(fleet_host(schema, "host-b", {"demo.so"}, {"--lease-s", "1"}).with_plugin(fixture_plugin("flaky.so")));
    const std::string counter = (counters.path() / "runs").string();
    // Fails once on host-a, then waits 1.5 s for its second attempt.
    auto res = post_json(a->cli(), "/api/v1/tasks/fail_then_succeed/$execute",
                         {{"params", {{"counter", counter}, {"failures", 1}}},
                          {"retry", {{"max_attempts", 3}, {"backoff", "fixed"}, {"delay_s", 1.5}, {"jitter", false}}}});
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 202, res->body);
    const std::string id = body_json(res)["job_id"];
    REQUIRE(eventually([&] { return job_column(schema, id, "status") == "scheduled"; }));
    CHECK(job_column(schema, id, "queued_by") == "host-a");
    a->kill9();

    json job = wait_job(b.cli(), id, 20);
    INFO(job.dump());
    CHECK(job["status"] == "completed");
    CHECK(job["attempt"] == 2);
    CHECK(job["run_by"] == "host-b");
    REQUIRE(job["attempts"].size() == 1);
    CHECK(job["attempts"][0]["run_by"] == "host-a");
    CHECK(job["attempts"][0]["error"].get<std::string>().find("attempt 1 failed") != std::string::npos);
    // Not before its time: the wait after the failure is kept.
    CHECK(iso_us(job["started_at"]) - iso_us(job["attempts"][0]["finished_at"]) >= 1'500'000);
}

TEST_CASE("fleet: submits with one Idempotency-Key racing on two hosts make one job") {
    PgSchema schema;
    Service a(fleet_host(schema, "host-a", {"demo.so"}));
    Service b(fleet_host(schema, "host-b", {"demo.so"}));
    constexpr int kClients = 8;
    std::vector<int> status(kClients, 0);
    std::vector<std::string> ids(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c)
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", (c % 2 ? b : a).host().port());
            httplib::Headers headers{{"Idempotency-Key", "fleet-key"}};
            auto res = cli.Post("/api/v1/tasks/greet_user/$execute", headers, R"({"params": {"name": "one"}})",
                                "application/json");
            if (!res) return;
            status[static_cast<size_t>(c)] = res->status;
            auto body = json::parse(res->body, nullptr, false);
            if (body.is_object() && body.contains("job_id")) ids[static_cast<size_t>(c)] = body["job_id"];
        });
    for (auto &t : clients) t.join();
    CHECK(std::count(status.begin(), status.end(), 202) == 1);
    CHECK(std::count(status.begin(), status.end(), 200) == kClients - 1);
    CHECK(std::count(ids.begin(), ids.end(), ids[0]) == kClients);
    CHECK(schema.query("SELECT count(*) FROM jobs") == "1");
    CHECK(wait_job(b.cli(), ids[0])["status"] == "completed");
}

TEST_CASE("fleet: a task only some hosts have is listed, accepted and checked by any host, run where it is") {
    PgSchema schema;
    Service a(fleet_host(schema, "host-a", {"demo.so"}, {"--lease-s", "1"}));
    auto b = std::make_unique<Service>(
        fleet_host(schema, "host-b", {"demo.so"}, {"--lease-s", "1"}).with_plugin(fixture_plugin("versioned_v1.so")));

    auto listed_on_a = [&](const std::string &query) {
        std::map<std::string, json> tasks;
        for (const json &t : get_json(a.cli(), "/api/v1/tasks" + query)) tasks[t["name"].get<std::string>()] = t;
        return tasks;
    };
    // The fleet's tasks, each with the live hosts that have it.
    REQUIRE(eventually([&] { return listed_on_a("").count("which_version") == 1; }));
    auto tasks = listed_on_a("");
    CHECK(tasks["which_version"]["hosts"] == json::array({"host-b"}));
    CHECK(tasks["which_version"]["plugin"]["version"] == "1.0.0");
    CHECK(tasks["greet_user"]["hosts"] == json::array({"host-a", "host-b"}));
    auto tagged = listed_on_a("?tags=versioned");
    CHECK(tagged.size() == 2);
    CHECK(tagged.count("slow_version") == 1);
    json one = get_json(a.cli(), "/api/v1/tasks/slow_version");
    CHECK(one["hosts"] == json::array({"host-b"}));
    CHECK(one["parameters_schema"].is_object());

    // Submitted to host-a, run by host-b: with a wait, the answer carries
    // the result; without, the job is read back from host-a.
    auto waited = a.cli().Post("/api/v1/tasks/slow_version/$execute?wait=10", R"({"params": {"seconds": 0}})",
                               "application/json");
    REQUIRE(waited);
    REQUIRE_MESSAGE(waited->status == 200, waited->body);
    json done = json::parse(waited->body);
    CHECK(done["status"] == "completed");
    CHECK(done["run_by"] == "host-b");
    CHECK(done["plugin_version"] == "1.0.0");
    CHECK(done["ran_version"] == "1.0.0");
    CHECK(done["artifact"]["data"]["result"]["version"] == 1);

    const std::string id = submit(a.cli(), "which_version");
    json job = wait_job(a.cli(), id);
    CHECK(job["status"] == "completed");
    CHECK(job["run_by"] == "host-b");
    CHECK(job_column(schema, id, "queued_by") == "host-b");  // claimed: no host held it before

    // Checked by host-a against the task's schema, as host-b would.
    check_problem(post_json(a.cli(), "/api/v1/tasks/slow_version/$execute", {{"params", {{"seconds", "soon"}}}}), 400,
                  "seconds");
    check_problem(
        post_json(a.cli(), "/api/v1/tasks/slow_version/$execute", {{"params", {{"seconds", 0}, {"sekonds", 1}}}}), 400,
        "sekonds");
    CHECK_STATUS(a.cli().Post("/api/v1/tasks/no_such_task/$execute", "", "application/json"), 404);
    CHECK(schema.query("SELECT count(*) FROM jobs WHERE task_name = 'slow_version'") == "1");

    // Once no live host has it, host-a neither lists nor accepts it.
    b.reset();
    REQUIRE(eventually([&] { return listed_on_a("").count("which_version") == 0; }));
    CHECK_STATUS(a.cli().Post("/api/v1/tasks/which_version/$execute", "", "application/json"), 404);
    CHECK_STATUS(a.cli().Get("/api/v1/tasks/which_version"), 404);
    CHECK(listed_on_a("")["greet_user"]["hosts"] == json::array({"host-a"}));
}

}  // TEST_SUITE("postgres")
