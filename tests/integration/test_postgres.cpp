// The host on PostgreSQL (--db postgresql://…). The durability suite also
// runs on it (ctest entry integration-postgres); these are the cases only
// PostgreSQL has: its URL, migrations as an operator's step, task SQL, and
// a database server that stops and comes back.
#include <atomic>
#include <mutex>
#include <thread>

#include "pg_cluster.hpp"
#include "test_util.hpp"

using namespace th_test;

TEST_SUITE("postgres") {

TEST_CASE("postgres: jobs, results, artifacts and task SQL through a host on PostgreSQL") {
    PgSchema schema;
    Service svc(ServiceOptions().with_db_url(schema.url()));
    auto &cli = svc.cli();
    auto greet = run_task(cli, "greet_user", {{"name", "Ada"}});
    CHECK(greet.artifact["data"]["result"] == json{{"message", "Hello, Ada!"}});
    CHECK(greet.artifact["data"]["params"] == json{{"name", "Ada"}});
    auto failed = run_task(cli, "failing_task", json::object(), "failed");
    CHECK(contains(failed.job["error"].get<std::string>(), "Something went wrong"));
    CHECK(failed.job["error_traceback"].is_string());
    // The Database service runs the plugin's SQL on PostgreSQL.
    CHECK(run_task(cli, "count_users").artifact["data"]["result"] == json{{"user_count", 3}});

    json root = body_json(post_json(cli, "/api/v1/artifacts", {{"data", {{"name", "root"}, {"n", 1.5}}}}));
    json child =
        body_json(post_json(cli, "/api/v1/artifacts", {{"data", {{"name", "child"}}}, {"parent_id", root["id"]}}));
    CHECK(child["level"] == 1);
    json tree = get_json(cli, "/api/v1/artifacts/" + root["id"].get<std::string>() + "/$tree");
    REQUIRE(tree["children"].size() == 1);
    CHECK(tree["children"][0]["id"] == child["id"]);
    CHECK(get_artifact(cli, root["id"])["data"] == json{{"name", "root"}, {"n", 1.5}});

    json failed_list = get_json(cli, "/api/v1/jobs?status_filter=failed");
    REQUIRE(failed_list.size() == 1);
    CHECK(failed_list[0]["id"] == failed.job["id"]);
    CHECK(get_json(cli, "/api/v1/jobs").size() == 3);
    // The rows are where the operator looks for them.
    CHECK(schema.query("SELECT count(*) FROM jobs") == "3");
    CHECK(schema.query("SELECT data->'result'->>'message' FROM artifacts WHERE id = '" +
                       greet.artifact["id"].get<std::string>() + "'") == "Hello, Ada!");
    CHECK(contains(get_json(cli, "/api/v1/system")["database"].get<std::string>(), "postgresql://"));
}

TEST_CASE("postgres: --no-migrate refuses a database without the schema; taskhost migrate brings it") {
    PgSchema schema;
    // Not a structured binding: clang 14 cannot capture one in doctest's macros.
    const auto refused = run_host_to_exit("--no-migrate", schema.url());
    const int status = refused.first;
    const std::string &out = refused.second;
    CHECK(status != 0);
    CHECK_MESSAGE(contains(out, "taskhost migrate"), out);
    CHECK(schema.query("SELECT to_regclass('jobs') IS NULL") == "t");  // nothing created

    const std::string migrate = std::string(TASKHOST_BINARY) + " migrate --db '" + schema.url() + "' 2>&1";
    for (const char *expected : {"migrated from 0", "already current"}) {
        FILE *p = ::popen(migrate.c_str(), "r");
        REQUIRE(p != nullptr);
        std::string said;
        char buf[512];
        while (size_t n = std::fread(buf, 1, sizeof buf, p)) said.append(buf, n);
        CHECK(::pclose(p) == 0);
        CHECK_MESSAGE(contains(said, expected), said);
    }
    Service svc(ServiceOptions::examples({"demo.so"}).with_db_url(schema.url()).flags({"--no-migrate"}));
    CHECK(run_task(svc.cli(), "hello").job["status"] == "completed");
}

TEST_CASE("postgres: the server stops: 503s that say why, /health unhealthy; it comes back: nothing lost") {
    PgCluster cluster;
    Service svc(ServiceOptions::examples({"demo.so"}).with_db_url(cluster.url()));
    auto &cli = svc.cli();
    std::vector<std::string> before;
    for (int i = 0; i < 5; ++i) before.push_back(run_task(cli, "hello").job["id"].get<std::string>());

    cluster.stop();
    for (const std::string path : {"/api/v1/tasks/hello/$execute?wait=10", "/api/v1/tasks/hello/$execute"}) {
        CAPTURE(path);
        const auto started = std::chrono::steady_clock::now();
        json p = check_problem(cli.Post(path, "{}", "application/json"), 503, "could not be stored");
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));  // at once, not timed out
    }
    json h = get_json(cli, "/health");
    CHECK(h["status"] == "unhealthy");
    CHECK(h["checks"]["database"]["message"].is_string());
    CHECK(svc.host().is_alive());
    // The tasks loaded here are still listed (the fleet's others cannot be
    // read); a task not loaded here cannot be looked for.
    json tasks = get_json(cli, "/api/v1/tasks");
    REQUIRE_FALSE(tasks.empty());
    CHECK(tasks[0]["hosts"].size() == 1);
    CHECK_STATUS(cli.Get("/api/v1/tasks/hello"), 200);
    check_problem(cli.Post("/api/v1/tasks/nowhere/$execute", "{}", "application/json"), 503, "could not be read");

    cluster.resume();
    CHECK(eventually([&] { return get_json(cli, "/health")["status"] == "healthy"; }));
    CHECK(run_task(cli, "hello").job["status"] == "completed");
    for (const auto &id : before) CHECK(get_job(cli, id)["status"] == "completed");
    CHECK(get_json(cli, "/api/v1/jobs").size() == before.size() + 1);
}

TEST_CASE("postgres: a job that ends while the server is away is written when it is back; nothing acknowledged is "
          "lost") {
    PgCluster cluster;
    Service svc(ServiceOptions::examples({"demo.so"}).with_db_url(cluster.url()));
    auto &cli = svc.cli();
    const std::string running = submit(cli, "slow_task", {{"seconds", 3}});
    wait_status(cli, running, "running");
    const auto started = std::chrono::steady_clock::now();

    // Submits go on throughout: each is acknowledged (202) or refused (503).
    std::mutex mu;
    std::vector<std::string> acknowledged;
    std::atomic<int> refused{0};
    std::atomic<bool> stop{false};
    std::thread load([&] {
        httplib::Client c("127.0.0.1", svc.host().port());
        while (!stop.load()) {
            auto res = c.Post("/api/v1/tasks/hello/$execute", "{}", "application/json");
            if (res && res->status == 202) {
                std::lock_guard lock(mu);
                acknowledged.push_back(json::parse(res->body)["job_id"].get<std::string>());
            } else if (res && res->status == 503) {
                refused.fetch_add(1);
            }
        }
    });
    cluster.stop();
    // The server stopped while the job ran: its end comes during the outage.
    REQUIRE(get_job(cli, running)["status"] == "running");
    // It ends meanwhile (3 s after it started); its end is kept, and /health says so.
    CHECK(eventually(
        [&] { return std::chrono::steady_clock::now() - started > std::chrono::milliseconds(3500); },
        std::chrono::seconds(5), std::chrono::milliseconds(50)));
    CHECK(eventually(
        [&] {
            json h = get_json(cli, "/health");
            return h["status"] == "unhealthy" &&
                   contains(h["checks"]["database"]["message"].get<std::string>(), "kept until the database is back");
        },
        std::chrono::seconds(15), std::chrono::milliseconds(100)));
    CHECK(refused.load() > 0);
    CHECK(svc.host().is_alive());

    cluster.resume();
    json ended = wait_job(cli, running, 20);
    CHECK(ended["status"] == "completed");
    CHECK(get_artifact(cli, ended["artifact_id"])["data"]["result"]["slept"] == 3);
    CHECK(eventually([&] { return get_json(cli, "/health")["status"] == "healthy"; }, std::chrono::seconds(15)));
    stop.store(true);
    load.join();
    std::lock_guard lock(mu);
    CHECK(!acknowledged.empty());
    for (const auto &id : acknowledged) {
        CAPTURE(id);
        CHECK(wait_job(cli, id, 20)["status"] == "completed");
    }
}

}  // TEST_SUITE("postgres")

TEST_SUITE("postgres") {

TEST_CASE("postgres: hosts sharing a database list each other, with their plugins") {
    PgSchema schema;
    Service a(ServiceOptions::examples({"demo.so"}).with_db_url(schema.url()).flags({"--host-id", "host-a"}));
    Service b(ServiceOptions::examples({"math.so"}).with_db_url(schema.url()).flags({"--host-id", "host-b"}));
    // Each host describes itself once bound; the heartbeat carries it over.
    REQUIRE(eventually([&] {
        json hosts = get_json(a.cli(), "/api/v1/system/hosts");
        return hosts.size() == 2 && hosts[0]["plugins"].size() == 1 && hosts[1]["plugins"].size() == 1;
    }));
    for (Service *svc : {&a, &b}) {
        json hosts = get_json(svc->cli(), "/api/v1/system/hosts");
        REQUIRE(hosts.size() == 2);
        CHECK(hosts[0]["id"] == "host-a");
        CHECK(hosts[1]["id"] == "host-b");
        CHECK(hosts[0]["self"] == (svc == &a));
        CHECK(hosts[1]["self"] == (svc == &b));
        CHECK(hosts[0]["plugins"][0]["name"] == "demo");
        CHECK(hosts[1]["plugins"][0]["name"] == "math");
        CHECK(contains(hosts[1]["plugins"][0]["tasks"].dump(), "\"add\""));
        CHECK(contains(hosts[0]["address"].get<std::string>(), "http://127.0.0.1:"));
        CHECK(is_iso_utc(hosts[0]["heartbeat_at"]));
    }
    // A job run on host-a carries it.
    auto done = run_task(a.cli(), "slow_task", {{"seconds", 0}});
    CHECK(schema.query("SELECT run_by FROM jobs WHERE id = '" + done.job["id"].get<std::string>() + "'") ==
          "host-a");
}

}  // TEST_SUITE("postgres")
