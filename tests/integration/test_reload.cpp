// Hot reload: generations swapped atomically on SIGHUP / $reload, in-flight
// jobs finishing on the generation they started on, broken versions refused
// while the previous one keeps serving.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "test_util.hpp"

using namespace th_test;

namespace {

json reload(httplib::Client &cli) {
    auto res = cli.Post("/api/v1/plugins/$reload");
    REQUIRE_STATUS(res, 200);
    return body_json(res);
}

int version_answer(httplib::Client &cli) {
    auto done = run_task(cli, "which_version");
    return done.artifact["data"]["result"]["version"].get<int>();
}

json plugin_entry(httplib::Client &cli, const std::string &file, const std::string &state = "active") {
    for (const auto &p : get_json(cli, "/api/v1/plugins"))
        if (p["file"] == file && p["state"] == state) return p;
    return nullptr;
}

bool contains_name(const json &list, const std::string &name) {
    for (const auto &x : list)
        if (x == name) return true;
    return false;
}

// The value of an unlabelled sample in a /metrics answer; -1 when absent.
double metric(const std::string &text, const std::string &name) {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
    return -1;
}

// GET path, which must answer 200 within a second (no reader waits for a reload).
std::string get_promptly(httplib::Client &cli, const std::string &path) {
    const auto asked = std::chrono::steady_clock::now();
    auto res = cli.Get(path);
    REQUIRE_STATUS(res, 200);
    CHECK_MESSAGE(std::chrono::steady_clock::now() - asked < 1s, path << " was slow to answer");
    return res->body;
}

// The file that releases blocking_init.so's init in the host.
fs::path release_file(Service &svc) {
    return fs::temp_directory_path() / ("taskhost-release-blocking-init-" + std::to_string(svc.host().pid()));
}

}  // namespace

TEST_SUITE("concurrency") {

TEST_CASE("reload: v1 to v2 by SIGHUP; a job started on v1 finishes with v1's answer") {
    Service svc({example_plugins(), {"--max-concurrency", "2"}});
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    auto added = reload(cli);
    CHECK(contains_name(added["added"], "versioned.so"));
    CHECK(version_answer(cli) == 1);

    std::string slow = submit(cli, "slow_version", {{"seconds", 2}});
    wait_status(cli, slow, "running");
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v2.so"), "versioned.so");
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] {
        auto e = plugin_entry(cli, "versioned.so");
        return !e.is_null() && e["version"] == "2.0.0";
    }));
    CHECK(version_answer(cli) == 2);

    // The old generation is retired, not gone, while its job runs.
    json job = get_job(cli, slow);
    if (job["status"] == "running") {
        auto retired = plugin_entry(cli, "versioned.so", "retired");
        REQUIRE_FALSE(retired.is_null());
        CHECK(retired["version"] == "1.0.0");
        CHECK(retired["jobs_in_flight"].get<int>() >= 1);
    }
    job = wait_job(cli, slow);
    REQUIRE(job["status"] == "completed");
    CHECK(get_artifact(cli, job["result"])["data"]["result"]["version"] == 1);
    // Once its last job is done the old generation is released.
    CHECK(eventually([&] { return plugin_entry(cli, "versioned.so", "retired").is_null(); }));
}

TEST_CASE("reload: add, remove and replace in one reload; a broken replacement keeps the old version") {
    Service svc({{example_plugin("demo.so")}, {}});
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    reload(cli);
    REQUIRE(version_answer(cli) == 1);

    deploy(svc.plugins_dir(), example_plugin("math.so"), "math.so");
    fs::remove(svc.plugins_dir() / "demo.so");
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v2.so"), "versioned.so");
    auto report = reload(cli);
    CHECK(report["added"] == json::array({"math.so"}));
    CHECK(report["removed"] == json::array({"demo.so"}));
    CHECK(report["replaced"] == json::array({"versioned.so"}));
    CHECK(report["refused"].empty());
    CHECK(version_answer(cli) == 2);
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", json::object()), 404, "not found");
    auto added = run_task(cli, "add", {{"a", 2}, {"b", 3}});
    CHECK(added.artifact["data"]["result"]["result"] == 5);

    // A broken v3 (not even a shared library) is refused; v2 keeps serving.
    {
        std::ofstream out(svc.plugins_dir() / ".broken.tmp", std::ios::binary);
        out << "not an ELF file";
    }
    fs::rename(svc.plugins_dir() / ".broken.tmp", svc.plugins_dir() / "versioned.so");
    report = reload(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["file"] == "versioned.so");
    CHECK(report["refused"][0]["kept_previous"] == true);
    CHECK_CONTAINS(report["refused"][0]["reason"].get<std::string>(), "not a loadable shared library");
    CHECK(version_answer(cli) == 2);
    auto entry = plugin_entry(cli, "versioned.so");
    REQUIRE_FALSE(entry.is_null());
    CHECK(entry["version"] == "2.0.0");
    CHECK_CONTAINS(entry["error"].get<std::string>(), "not a loadable shared library");

    // An init that fails is refused the same way.
    deploy(svc.plugins_dir(), fixture_plugin("init_fails.so"), "versioned.so");
    report = reload(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK_CONTAINS(report["refused"][0]["reason"].get<std::string>(), "database unavailable");
    CHECK(version_answer(cli) == 2);

    // Unchanged files are not loaded again.
    report = reload(cli);
    CHECK(report["added"].empty());
    CHECK(report["replaced"].empty());
    CHECK(report["refused"].empty());
}

TEST_CASE("reload: overwriting a loaded plugin in place never crashes the host") {
    Service svc({example_plugins(), {}});
    auto &cli = svc.cli();
    fs::copy_file(fixture_plugin("versioned_v1.so"), svc.plugins_dir() / "versioned.so");
    reload(cli);
    REQUIRE(version_answer(cli) == 1);
    std::string slow = submit(cli, "slow_version", {{"seconds", 0.5}});

    // In place: same inode, truncated and rewritten with garbage.
    {
        std::ofstream out(svc.plugins_dir() / "versioned.so", std::ios::binary | std::ios::trunc);
        for (int i = 0; i < 4096; ++i) out << "garbage!";
    }
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] {
        auto e = plugin_entry(cli, "versioned.so");
        return !e.is_null() && e["error"].is_string();
    }));
    CHECK(svc.host().is_alive());
    CHECK(version_answer(cli) == 1);
    CHECK(wait_job(cli, slow)["status"] == "completed");

    // Writing a good build in place works too.
    {
        std::ifstream in(fixture_plugin("versioned_v2.so"), std::ios::binary);
        std::ofstream out(svc.plugins_dir() / "versioned.so", std::ios::binary | std::ios::trunc);
        out << in.rdbuf();
    }
    reload(cli);
    CHECK(version_answer(cli) == 2);
    CHECK(svc.host().is_alive());
}

TEST_CASE("reload: a removed plugin's queued jobs run on the generation they were accepted on") {
    Service svc({{example_plugin("demo.so")}, {"--max-concurrency", "1"}});
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    reload(cli);
    std::string blocker = submit(cli, "slow_task", {{"seconds", 1}});
    wait_status(cli, blocker, "running");
    std::string queued = submit(cli, "which_version");
    CHECK(get_job(cli, queued)["status"] == "pending");

    fs::remove(svc.plugins_dir() / "versioned.so");
    auto report = reload(cli);
    CHECK(report["removed"] == json::array({"versioned.so"}));
    check_problem(post_json(cli, "/api/v1/tasks/which_version/$execute", json::object()), 404, "not found");
    check_problem(cli.Get("/api/v1/tasks/which_version"), 404, "not found");

    json job = wait_job(cli, queued);
    CHECK(job["status"] == "completed");
    CHECK(get_artifact(cli, job["result"])["data"]["result"]["version"] == 1);
}

TEST_CASE("reload: 50 reloads while clients submit jobs; every job is accepted and completes") {
    // In both modes: under TSan this is the in-process executor's race test.
    ServiceOptions options{example_plugins(), {"--max-concurrency", "4"}};
    SUBCASE("process") {}
    SUBCASE("in-process") { options.in_process(); }
    Service svc(options);
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    reload(cli);

    constexpr int kClients = 4;
    constexpr int kPerClient = 150;                               // bounded in count ...
    const auto give_up = std::chrono::steady_clock::now() + 60s;  // ... and in time
    std::atomic<bool> stop{false};
    std::atomic<int> rejected{0};
    std::vector<std::vector<std::string>> ids(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            auto client = svc.host().make_client();
            for (int i = 0; i < kPerClient && !stop && std::chrono::steady_clock::now() < give_up; ++i) {
                const char *task = i % 2 ? "which_version" : "greet_user";
                auto res = client->Post(std::string("/api/v1/tasks/") + task + "/$execute", "{}", "application/json");
                if (!res || res->status != 202) {
                    ++rejected;
                    continue;
                }
                ids[c].push_back(json::parse(res->body)["job_id"]);
            }
        });
    }
    std::set<std::string> versions_seen;
    int reloads_ok = 0;
    std::string reload_failure;
    for (int i = 0; i < 50; ++i) {
        deploy(svc.plugins_dir(), fixture_plugin(i % 2 ? "versioned_v1.so" : "versioned_v2.so"), "versioned.so");
        // Not REQUIRE: the client threads must be joined before this test can fail.
        auto res = cli.Post("/api/v1/plugins/$reload");
        if (!res || res->status != 200) {
            reload_failure = res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error());
            stop = true;
            break;
        }
        if (json::parse(res->body)["refused"].empty()) ++reloads_ok;
    }
    for (auto &t : clients) t.join();
    REQUIRE_MESSAGE(reloads_ok == 50, "reload failed: " << reload_failure);
    CHECK(rejected == 0);

    size_t total = 0;
    for (const auto &list : ids) {
        for (const auto &id : list) {
            json job = wait_job(cli, id, 30);
            REQUIRE_MESSAGE(job["status"] == "completed", job.dump());
            json data = get_artifact(cli, job["result"])["data"];
            if (data["task_name"] == "which_version") {
                int v = data["result"]["version"];
                CHECK((v == 1 || v == 2));
                versions_seen.insert(std::to_string(v));
            } else {
                CHECK(data["result"]["message"] == "Hello, World!");
            }
            ++total;
        }
    }
    CHECK(total == kClients * kPerClient);
    CHECK(svc.host().is_alive());
}

TEST_CASE("reload: a storm of 200 SIGHUPs leaves the host up and consistent") {
    Service svc({example_plugins(), {}});
    auto &cli = svc.cli();
    size_t tasks_before = get_json(cli, "/api/v1/tasks").size();
    for (int i = 0; i < 200; ++i) svc.host().send_signal(SIGHUP);
    CHECK(svc.host().is_alive());
    CHECK(get_json(cli, "/health")["status"] == "healthy");
    CHECK(get_json(cli, "/api/v1/tasks").size() == tasks_before);
    for (const auto &p : get_json(cli, "/api/v1/plugins")) CHECK(p["state"] == "active");
    CHECK(run_task(cli, "greet_user", {{"name", "Storm"}}).artifact["data"]["result"]["message"] == "Hello, Storm!");
    // Reloads in the storm were coalesced, and a later one still works.
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    svc.host().send_signal(SIGHUP);
    CHECK(eventually([&] { return !plugin_entry(cli, "versioned.so").is_null(); }));
}

TEST_CASE("reload: --watch picks up a new plugin without a signal") {
    Service svc({{example_plugin("demo.so")}, {"--watch", "--watch-quiet-ms", "100"}});
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    REQUIRE(eventually([&] { return !plugin_entry(cli, "versioned.so").is_null(); }));
    CHECK(version_answer(cli) == 1);
    fs::remove(svc.plugins_dir() / "versioned.so");
    CHECK(eventually([&] { return plugin_entry(cli, "versioned.so").is_null(); }));
}

TEST_CASE("reload: an init that does not return holds up no reader; $reload answers 503 naming the file") {
    Service svc(
        ServiceOptions::examples({"demo.so"}).in_process().flags({"--reload-timeout-s", "1", "--probe-timeout-s", "0"}));
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("blocking_init.so"), "blocking_init.so");

    const auto asked = std::chrono::steady_clock::now();
    const json problem = check_problem(cli.Post("/api/v1/plugins/$reload"), 503,
                                       "has not finished (loading blocking_init.so); it goes on in the background");
    CHECK(std::chrono::steady_clock::now() - asked < 3s);
    CHECK_CONTAINS(problem["detail"].get<std::string>(), "the reload has been running for ");

    // The readers answer at once with what the last finished reload published.
    const json plugins = json::parse(get_promptly(cli, "/api/v1/plugins"));
    REQUIRE(plugins.size() == 1);
    CHECK(plugins[0]["file"] == "demo.so");
    // The 503 counts --reload-timeout-s from the request, /health from the
    // moment the reload thread started, which can be a little later.
    json health;
    REQUIRE(eventually([&] {
        health = json::parse(get_promptly(cli, "/health"));
        return health["checks"].contains("reload");
    }));
    CHECK(health["status"] == "degraded");
    CHECK(health["checks"]["reload"]["state"] == "degraded");
    CHECK_CONTAINS(health["checks"]["reload"]["message"].get<std::string>(), "a reload has been running for ");
    CHECK_CONTAINS(health["checks"]["reload"]["message"].get<std::string>(), "(loading blocking_init.so)");
    const std::string metrics = get_promptly(cli, "/metrics");
    CHECK(metric(metrics, "taskhost_reload_in_progress_seconds") >= 1);
    CHECK(metric(metrics, "taskhost_workers_stuck") == 0);
    CHECK(metric(metrics, "taskhost_plugins_loaded") == 1);
    // Another $reload waits behind it, and says why.
    check_problem(cli.Post("/api/v1/plugins/$reload"), 503, "(loading blocking_init.so)");
    CHECK_CONTAINS(svc.host().stderr_text(), "$reload answered 503: the reload has been running for ");

    // Released, the reload publishes the plugin; the next one is back to normal.
    std::ofstream(release_file(svc)).put('\n');
    REQUIRE(eventually([&] { return plugin_entry(cli, "blocking_init.so").is_object(); }));
    const json report = reload(cli);
    CHECK(report["unchanged"] == 2);
    const json after = get_json(cli, "/health");
    CHECK(after["status"] == "healthy");
    CHECK_FALSE(after["checks"].contains("reload"));
    CHECK(metric(get_promptly(cli, "/metrics"), "taskhost_reload_in_progress_seconds") == 0);
    CHECK(run_task(cli, "blocking_init_task").artifact["data"]["result"]["loaded"] == true);
    fs::remove(release_file(svc));
}

TEST_CASE("reload: SIGTERM ends a host whose reload is stuck in a plugin's init within --shutdown-timeout") {
    // Leaving threads behind is what this stop does on purpose; under TSan
    // (whose options the host inherits) that must not turn into exit 66.
    const char *tsan = std::getenv("TSAN_OPTIONS");
    const std::string kept_tsan = tsan ? tsan : "";
    ::setenv("TSAN_OPTIONS", (kept_tsan + (kept_tsan.empty() ? "" : ":") + "report_thread_leaks=0").c_str(), 1);
    Service svc(ServiceOptions::examples({"demo.so"})
                    .in_process()
                    .flags({"--reload-timeout-s", "0.2", "--shutdown-timeout", "1", "--probe-timeout-s", "0"}));
    if (tsan) ::setenv("TSAN_OPTIONS", kept_tsan.c_str(), 1);
    else ::unsetenv("TSAN_OPTIONS");
    deploy(svc.plugins_dir(), fixture_plugin("blocking_init.so"), "blocking_init.so");
    check_problem(svc.cli().Post("/api/v1/plugins/$reload"), 503, "(loading blocking_init.so)");
    // The client's keep-alive connection stays open: the host must not wait for it either.

    const auto asked = std::chrono::steady_clock::now();
    svc.host().send_signal(SIGTERM);
    int status = 0;
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(15), &status));
    CHECK(std::chrono::steady_clock::now() - asked < 3s);  // the 1 s timeout, then a flush and exit
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // Whichever part is found stuck first (the HTTP server, held by the idle
    // connection, or the reload thread) is named.
    CHECK_CONTAINS(svc.host().stderr_text(),
                   "stopped at the shutdown deadline, leaving 0 job thread(s) stuck in plugin code; ");
}

}  // TEST_SUITE("concurrency")
