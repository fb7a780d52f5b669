// Plugins that misbehave: the host stays up and honest, and each job that
// met the misbehaviour fails with an error that says what happened.
#include "test_util.hpp"

#include <fstream>

using namespace th_test;

namespace {

std::string health_check_message(httplib::Client &cli, const std::string &check) {
    json health = get_json(cli, "/health");
    return health["checks"].contains(check) ? health["checks"][check].value("message", "") : "";
}

// Submits a job that will end the host: its 202 may not get out before the
// host dies (the job is stored first, so it is found after the restart).
// Its id, or "" if no answer came.
std::string submit_crasher(httplib::Client &cli, const std::string &task, const json &params) {
    auto res = post_json(cli, "/api/v1/tasks/" + task + "/$execute", json{{"params", params}});
    if (!res) return "";
    REQUIRE(res->status == 202);
    return body_json(res)["job_id"].get<std::string>();
}

std::string only_job_of(httplib::Client &cli, const std::string &task) {
    std::vector<std::string> ids;
    for (const auto &job : get_json(cli, "/api/v1/jobs"))
        if (job["task_name"] == task) ids.push_back(job["id"].get<std::string>());
    REQUIRE(ids.size() == 1);
    return ids[0];
}

ServiceOptions with_fixtures(std::vector<std::string> files) {
    ServiceOptions o = ServiceOptions::examples({});
    for (const auto &f : files) o.with_plugin(fixture_plugin(f));
    return o;
}

}  // namespace

TEST_SUITE("hostile plugins") {

TEST_CASE("a result over --max-result-bytes fails its job; nothing big is stored") {
    Service svc(with_fixtures({"results.so"}).flags({"--max-result-bytes", "4096"}));
    auto &cli = svc.cli();
    auto done = run_task(cli, "big_result", {{"bytes", 100000}}, "failed");
    CHECK_CONTAINS(done.job["error"].get<std::string>(),
                   "taskhost::ResultTooLarge: the result is 100014 bytes, more than the host accepts (4096 bytes, "
                   "--max-result-bytes)");
    CHECK(done.artifact["data"]["result"].is_null());
    CHECK(done.artifact.dump().size() < 4096);
    // Under the limit: taken as usual.
    CHECK(run_task(cli, "big_result", {{"bytes", 1000}})
              .artifact["data"]["result"]["padding"]
              .get<std::string>()
              .size() == 1000);
    // An artifact the task saves is held to the same limit.
    auto saved = run_task(cli, "big_artifact", {{"bytes", 100000}}, "failed");
    CHECK_CONTAINS(saved.job["error"].get<std::string>(),
                   "artifact data is 100002 bytes, more than the host accepts (4096 bytes, --max-result-bytes)");
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == 3);  // the three result artifacts only
}

TEST_CASE("invalid UTF-8 in a result fails its job instead of being replaced") {
    Service svc(with_fixtures({"results.so"}));
    auto done = run_task(svc.cli(), "bad_utf8", json::object(), "failed");
    CHECK(done.job["error"] ==
          "taskhost::InvalidUtf8: the result holds a string that is not valid UTF-8 (invalid UTF-8 byte at index 3: "
          "0xFF)");
    CHECK(done.artifact["data"]["result"].is_null());
}

TEST_CASE("a C plugin's result that is not JSON fails its job, saying where") {
    Service svc(with_fixtures({"raw_result.so"}));
    auto done = run_task(svc.cli(), "not_json", json::object(), "failed");
    CHECK(done.job["error"] ==
          "taskhost::InvalidResult: the task returned text that is not valid JSON: parse error at line 1, column 27: "
          "syntax error while parsing value - invalid literal; last read: '\"oops\": tru}'");
}

}  // TEST_SUITE("hostile plugins")

TEST_SUITE("hostile plugins: crashes") {

namespace {

struct CrashCase {
    const char *task;
    json params;
    const char *cause;  // as the failed job names it (in-process)
    int signal;         // the host's death: a signal, or 0 for an exit
    int exit_status;
    const char *worker_cause;  // as the failed job names its worker's death (process isolation)
};

// In-process: a job that ends the host, with another job running beside it
// and one waiting behind: the host dies as the plugin made it die;
// restarted on the same database it serves at once, the crashing job failed
// with its cause, the one beside it failed saying why, the waiting one runs.
void crash_and_recover(const CrashCase &c) {
    CAPTURE(c.task);
    Service svc(with_fixtures({"crashers.so"})
                    .with_plugin(example_plugin("demo.so"))
                    .with_file_db()
                    .in_process()
                    .flags({"--max-concurrency", "2"}));
    const std::string beside = submit(svc.cli(), "slow_task", {{"seconds", 30}});
    wait_status(svc.cli(), beside, "running");
    std::string crasher = submit_crasher(svc.cli(), c.task, c.params);
    int status = 0;
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(20), &status));
    if (c.signal != 0) {
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == c.signal);
    } else {
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == c.exit_status);
    }
    svc.restart();
    auto &cli = svc.cli();  // a new client for the new host
    if (crasher.empty()) crasher = only_job_of(cli, c.task);
    json crashed = get_job(cli, crasher);
    CHECK(crashed["status"] == "failed");
    if (c.signal != 0 || c.exit_status != 0) {
        CHECK(crashed["error"] == std::string("the job crashed the host: ") + c.cause + " in task '" + c.task +
                                      "' of plugin crashers 1.0.0 (crashers.so)");
        CHECK_CONTAINS(get_job(cli, beside)["error"].get<std::string>(),
                       std::string("the host crashed while this job was running: ") + c.cause + " in job " + crasher);
    } else {
        // _exit(0) leaves no trace in the process: only the committed start.
        CHECK(crashed["error"] == "the host stopped while this job was running");
        CHECK(get_job(cli, beside)["error"] == "the host stopped while this job was running");
    }
    CHECK(get_job(cli, beside)["status"] == "failed");
    const auto scraped = cli.Get("/metrics");
    REQUIRE_STATUS(scraped, 200);
    const std::string &metrics = scraped->body;
    if (c.signal != 0 || c.exit_status != 0) CHECK_CONTAINS(metrics, "\ntaskhost_previous_run_crashed 1\n");
    else CHECK_CONTAINS(metrics, "\ntaskhost_previous_run_crashed 0\n");
    // Serving at once, and the crasher does not run again (no crash loop).
    CHECK(svc.host().is_alive());
    CHECK(run_task(cli, "greet_user", {{"name", "after"}}).artifact["data"]["result"] ==
          json{{"message", "Hello, after!"}});
    if (c.signal != 0 || c.exit_status != 0)
        CHECK_CONTAINS(svc.host().stderr_text(), std::string("the last run of this host died: ") + c.cause +
                                                     " in task '" + c.task + "' of plugin crashers 1.0.0");
}

// Process isolation, the same row: the host stays up and healthy, the
// crashing job fails naming its worker's death, the job beside it (on
// another worker) completes, and the next job runs on a new worker.
void crash_costs_one_job(const CrashCase &c) {
    CAPTURE(c.task);
    Service svc(with_fixtures({"crashers.so"})
                    .with_plugin(example_plugin("demo.so"))
                    .with_file_db()
                    .flags({"--max-concurrency", "2"}));
    auto &cli = svc.cli();
    const std::string beside = submit(cli, "slow_task", {{"seconds", 1}});
    wait_status(cli, beside, "running");
    const Finished crashed = run_task(cli, c.task, c.params, "failed");
    CHECK(crashed.job["error"] == std::string("taskhost::WorkerCrashed: worker crashed: ") + c.worker_cause +
                                      " while running task '" + c.task + "' of plugin crashers 1.0.0");
    CHECK(svc.host().is_alive());
    CHECK(get_json(cli, "/health")["status"] == "healthy");  // one crash: not yet a quarantine
    CHECK(wait_job(cli, beside)["status"] == "completed");
    CHECK(run_task(cli, "greet_user", {{"name", "after"}}).artifact["data"]["result"] ==
          json{{"message", "Hello, after!"}});
    const auto scraped = cli.Get("/metrics");
    REQUIRE_STATUS(scraped, 200);
    CHECK_CONTAINS(scraped->body, "\ntaskhost_worker_crashes_total{plugin=\"crashers\"} 1\n");
    CHECK_CONTAINS(scraped->body, "\ntaskhost_previous_run_crashed 0\n");
}

const CrashCase segfault{"segfault", json::object(), "SIGSEGV (signal 11)", SIGSEGV, 0, worker_segv_cause};
const CrashCase abort_now{"abort_now", json::object(), "SIGABRT (signal 6)", SIGABRT, 0, "SIGABRT"};
const CrashCase stack_overflow{"stack_overflow", json::object(), "SIGSEGV (signal 11)", SIGSEGV, 0, worker_segv_cause};
const CrashCase exit_3{"exit_now", {{"code", 3}}, "exit() called by plugin code", 0, 70, "exit status 3"};
const CrashCase exit_0{"exit_now", {{"code", 0}}, "exit() called by plugin code", 0, 70, "exit status 0"};
const CrashCase underscore_exit_0{"underscore_exit", {{"code", 0}}, "", 0, 0, "exit status 0"};

}  // namespace

TEST_CASE("a segfault in a task") {
    SUBCASE("in-process") { crash_and_recover(segfault); }
    SUBCASE("process") { crash_costs_one_job(segfault); }
}

TEST_CASE("abort() in a task") {
    SUBCASE("in-process") { crash_and_recover(abort_now); }
    SUBCASE("process") { crash_costs_one_job(abort_now); }
}

TEST_CASE("a stack overflow in a task") {
    SUBCASE("in-process") { crash_and_recover(stack_overflow); }
    SUBCASE("process") { crash_costs_one_job(stack_overflow); }
}

TEST_CASE("exit(3) in a task: in-process the host exits 70, so a supervisor restarts it") {
    SUBCASE("in-process") { crash_and_recover(exit_3); }
    SUBCASE("process") { crash_costs_one_job(exit_3); }
}

TEST_CASE("exit(0) in a task is not a clean exit either") {
    SUBCASE("in-process") { crash_and_recover(exit_0); }
    SUBCASE("process") { crash_costs_one_job(exit_0); }
}

TEST_CASE("_exit(0) in a task: nothing to record in-process, but the job is never run again") {
    SUBCASE("in-process") { crash_and_recover(underscore_exit_0); }
    SUBCASE("process") { crash_costs_one_job(underscore_exit_0); }
}

}  // TEST_SUITE("hostile plugins: crashes")

TEST_SUITE("hostile plugins: quarantine") {

namespace {

json plugin_entry(httplib::Client &cli, const std::string &file) {
    for (const auto &p : get_json(cli, "/api/v1/plugins"))
        if (p["file"] == file && p["state"] != "retired") return p;
    FAIL("no entry for " << file);
    return nullptr;
}

// Submits `task`, waits for the host to die of it and restarts it.
void crash_once(Service &svc, const std::string &task) {
    submit_crasher(svc.cli(), task, json::object());
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(20)));
    svc.restart();
}

}  // namespace

// (In process isolation two worker crashes do the same: test_isolation.cpp.)
TEST_CASE("a plugin version that crashed the host twice is quarantined, and stays so across restarts") {
    TempDir copies;
    const fs::path crashers = copies / "crashers.so";
    fs::copy_file(fixture_plugin("crashers.so"), crashers);
    ServiceOptions options = with_fixtures({}).with_plugin(example_plugin("demo.so")).with_file_db().in_process();
    options.with_plugin(crashers);
    Service svc(options);

    crash_once(svc, "segfault");
    CHECK(plugin_entry(svc.cli(), "crashers.so")["state"] == "active");  // once is not enough
    crash_once(svc, "abort_now");

    auto &cli = svc.cli();
    json entry = plugin_entry(cli, "crashers.so");
    CHECK(entry["state"] == "quarantined");
    CHECK(entry["quarantine"]["crashes"] == 2);
    CHECK_CONTAINS(entry["error"].get<std::string>(),
                   "quarantined: crashed the host: SIGABRT (signal 6) in task 'abort_now'");
    CHECK(entry["tasks"].size() == 5);
    // Its tasks answer 503 naming it; the other plugins serve.
    json refused = check_problem(post_json(cli, "/api/v1/tasks/segfault/$execute", json::object()), 503);
    CHECK_CONTAINS(refused["detail"].get<std::string>(),
                   "Task 'segfault' cannot run: plugin crashers 1.0.0 (crashers.so) is quarantined");
    CHECK(run_task(cli, "greet_user").job["status"] == "completed");
    auto metrics = cli.Get("/metrics");
    REQUIRE_STATUS(metrics, 200);
    CHECK_CONTAINS(metrics->body, "taskhost_plugins_quarantined 1");

    // A restart does not lift it; a new version of the file does.
    svc.restart();
    CHECK(plugin_entry(svc.cli(), "crashers.so")["state"] == "quarantined");
    {
        std::ofstream out(crashers, std::ios::binary | std::ios::app);
        out << "a new build";  // other bytes: another version
    }
    REQUIRE_STATUS(svc.cli().Post("/api/v1/plugins/$reload"), 200);
    CHECK(plugin_entry(svc.cli(), "crashers.so")["state"] == "active");
}

}  // TEST_SUITE("hostile plugins: quarantine")

TEST_SUITE("hostile plugins: hard limits") {

// Each case runs in both modes: in-process a job that will not stop is
// given up on (its thread may run on, stuck); in a worker process its
// worker is killed.

TEST_CASE("a task that ignores its timeout is given up on after the grace; its worker is replaced") {
    bool in_process = false;
    SUBCASE("in-process") { in_process = true; }
    SUBCASE("process") {}
    ServiceOptions options = with_fixtures({"timeouts.so"})
                                 .with_plugin(example_plugin("demo.so"))
                                 .flags({"--max-concurrency", "2", "--stop-grace-s", "0.5"});
    if (in_process) options.in_process();
    Service svc(options);
    auto &cli = svc.cli();
    // Two stubborn jobs take both workers and never look at the flag.
    const std::string first = submit(cli, "stubborn_sleep", {{"seconds", 3600}});
    const std::string second = submit(cli, "stubborn_sleep", {{"seconds", 3600}});
    for (const auto &id : {first, second}) {
        json job = wait_job(cli, id, 10);  // 0.3 s timeout + 0.5 s grace
        CHECK(job["status"] == "failed");
        CHECK(job["error"] == (in_process ? "did not stop within 0.5 s of its timeout"
                                          : "killed 0.5 s after its timeout: it did not stop"));
    }
    // The pool kept its size: other tasks run at once.
    CHECK(run_task(cli, "greet_user", {{"name", "still"}}).job["status"] == "completed");
    if (in_process) {
        const json health = get_json(cli, "/health");
        CHECK(health["status"] == "degraded");
        CHECK_CONTAINS(health["checks"]["workers"]["message"].get<std::string>(), "2 worker(s) stuck in task code");
    } else {
        CHECK_FALSE(get_json(cli, "/health")["checks"].contains("workers"));  // killed: nothing is left stuck
    }
    // Two hangs quarantine the version: its tasks are withdrawn and say why.
    REQUIRE(eventually([&] {
        auto res = post_json(cli, "/api/v1/tasks/stubborn_sleep/$execute", {{"params", {{"seconds", 1}}}});
        return res && res->status == 503;
    }));
    CHECK(get_json(cli, "/health")["status"] == "degraded");
    CHECK_CONTAINS(health_check_message(cli, "plugins"), "timeouts.so is quarantined");
}

TEST_CASE("a running task that ignores $cancel is given up on after the grace") {
    bool in_process = false;
    SUBCASE("in-process") { in_process = true; }
    SUBCASE("process") {}
    ServiceOptions options = with_fixtures({"timeouts.so"}).flags({"--stop-grace-s", "0.5"});
    if (in_process) options.in_process();
    Service svc(options);
    auto &cli = svc.cli();
    // timeout_s 3600 overrides the SDK's 0.3 s, so the cancel is what ends it.
    auto submitted =
        post_json(cli, "/api/v1/tasks/stubborn_sleep/$execute", {{"params", {{"seconds", 3600}}}, {"timeout_s", 3600}});
    REQUIRE_STATUS(submitted, 202);
    const std::string id = body_json(submitted)["job_id"];
    wait_status(cli, id, "running");
    auto res = cli.Post("/api/v1/jobs/" + id + "/$cancel");
    REQUIRE_STATUS(res, 202);
    json job = wait_job(cli, id, 10);
    CHECK(job["status"] == "canceled");
    CHECK(job["error"] == (in_process ? "did not stop within 0.5 s of being canceled"
                                      : "killed 0.5 s after being canceled: it did not stop"));
}

TEST_CASE("SIGTERM with four non-cooperative jobs ends the host within --shutdown-timeout") {
    bool in_process = false;
    SUBCASE("in-process") { in_process = true; }
    SUBCASE("process") {}
    ServiceOptions options =
        with_fixtures({"timeouts.so"})
            .with_file_db()
            .flags({"--max-concurrency", "4", "--stop-grace-s", "3600", "--shutdown-timeout", "2"});
    if (in_process) options.in_process();
    Service svc(options);
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) {
        // No timeout of their own: timeout_s 3600 overrides the SDK's 0.3 s.
        auto res = post_json(cli, "/api/v1/tasks/stubborn_sleep/$execute",
                             {{"params", {{"seconds", 3600}}}, {"timeout_s", 3600}});
        REQUIRE_STATUS(res, 202);
        ids.push_back(body_json(res)["job_id"]);
    }
    for (const auto &id : ids) wait_status(cli, id, "running");
    cli.stop();  // no idle connection: this is the orderly path (the next case keeps one open)
    const auto started = std::chrono::steady_clock::now();
    svc.host().send_signal(SIGTERM);
    int status = 0;
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(15), &status));
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    CHECK(took < 4.0);  // the 2 s timeout, then a flush and exit
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // Recorded as interrupted, not lost.
    svc.restart();
    for (const auto &id : ids) {
        json job = get_job(svc.cli(), id);
        CHECK(job["status"] == "failed");
        CHECK(job["error"] == std::string("interrupted: the host was stopping and the job did not stop in time") +
                                  (in_process ? "" : "; its worker process was killed"));
    }
    // A routine stop is not a hang: the plugin is not charged for it.
    for (const auto &p : get_json(svc.cli(), "/api/v1/plugins"))
        if (p["file"] == "timeouts.so") CHECK(p["state"] == "active");
}

TEST_CASE("SIGTERM with a client's keep-alive connection open still ends the host within --shutdown-timeout") {
    bool in_process = false;
    SUBCASE("in-process") { in_process = true; }
    SUBCASE("process") {}
    ServiceOptions options =
        with_fixtures({"timeouts.so"}).with_file_db().flags({"--stop-grace-s", "3600", "--shutdown-timeout", "1"});
    if (in_process) options.in_process();
    Service svc(options);
    auto &cli = svc.cli();
    auto res =
        post_json(cli, "/api/v1/tasks/stubborn_sleep/$execute", {{"params", {{"seconds", 3600}}}, {"timeout_s", 3600}});
    REQUIRE_STATUS(res, 202);
    const std::string id = body_json(res)["job_id"];
    wait_status(cli, id, "running");  // and the connection stays open, idle
    const auto started = std::chrono::steady_clock::now();
    svc.host().send_signal(SIGTERM);
    int status = 0;
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(15), &status));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() < 3.0);
    CHECK(WIFEXITED(status));
    if (in_process)
        CHECK_CONTAINS(svc.host().stderr_text(), "stopped at the shutdown deadline, leaving 1 job thread(s) stuck");
    else
        CHECK_FALSE(contains(svc.host().stderr_text(), "stuck in plugin code"));  // its worker was killed
    svc.restart();
    CHECK(get_job(svc.cli(), id)["error"] ==
          std::string("interrupted: the host was stopping and the job did not stop in time") +
              (in_process ? "" : "; its worker process was killed"));
}

}  // TEST_SUITE("hostile plugins: hard limits")

TEST_SUITE("hostile plugins: loading") {

namespace {

json entry_for(httplib::Client &cli, const std::string &file) {
    for (const auto &p : get_json(cli, "/api/v1/plugins"))
        if (p["file"] == file && p["state"] != "retired") return p;
    return nullptr;
}

json reload_report(httplib::Client &cli) {
    auto res = cli.Post("/api/v1/plugins/$reload");
    REQUIRE_STATUS(res, 200);
    return body_json(res);
}

// A real copy (not the harness's symlink) with the given mode.
fs::path place_copy(const fs::path &dir, const std::string &fixture, const std::string &name, fs::perms mode) {
    const fs::path to = dir / name;
    fs::copy_file(fixture_plugin(fixture), to, fs::copy_options::overwrite_existing);
    fs::permissions(to, mode);
    return to;
}

constexpr fs::perms rw_r_r =
    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read;

}  // namespace

TEST_CASE("a plugin file any user may write is refused until its mode is fixed") {
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
    auto &cli = svc.cli();
    const fs::path file = place_copy(svc.plugins_dir(), "versioned_v1.so", "versioned.so", fs::perms::all);
    json report = reload_report(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["reason"] ==
          "insecure file: writable by any user (mode 0777); pass --allow-insecure-plugins to load it anyway");
    CHECK(entry_for(cli, "versioned.so")["state"] == "refused");
    CHECK(get_json(cli, "/health")["status"] == "degraded");
    CHECK_CONTAINS(health_check_message(cli, "plugins"), "versioned.so was refused: insecure file");

    fs::permissions(file, rw_r_r);
    CHECK(reload_report(cli)["added"] == json::array({"versioned.so"}));
    CHECK(run_task(cli, "which_version").artifact["data"]["result"]["version"] == 1);
    CHECK(get_json(cli, "/health")["status"] == "healthy");
}

TEST_CASE("a group-writable plugin file loads with --allow-insecure-plugins") {
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")).flags({"--allow-insecure-plugins"}));
    place_copy(svc.plugins_dir(), "versioned_v1.so", "versioned.so", rw_r_r | fs::perms::group_write);
    CHECK(reload_report(svc.cli())["added"] == json::array({"versioned.so"}));
}

TEST_CASE("a plugin owned by another user is refused, also through a symlink") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: needs root to give a file to another user");
        return;
    }
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
    auto &cli = svc.cli();
    TempDir elsewhere;
    const fs::path foreign = place_copy(elsewhere.path(), "versioned_v1.so", "versioned.so", rw_r_r);
    REQUIRE(::chown(foreign.c_str(), 65534, 65534) == 0);  // nobody
    fs::create_symlink(foreign, svc.plugins_dir() / "versioned.so");
    json report = reload_report(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["reason"] ==
          "insecure file: owned by uid 65534, neither the host's user (uid 0) nor root; pass "
          "--allow-insecure-plugins to load it anyway");
    CHECK_FALSE(get_json(cli, "/api/v1/tasks").dump().find("which_version") != std::string::npos);
}

TEST_CASE("a plugins folder others may write is not read; what serves keeps serving") {
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
    auto &cli = svc.cli();
    fs::permissions(svc.plugins_dir(), fs::perms::all);
    place_copy(svc.plugins_dir(), "versioned_v1.so", "versioned.so", rw_r_r);
    json report = reload_report(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["file"] == svc.plugins_dir().string());
    CHECK_CONTAINS(report["refused"][0]["reason"].get<std::string>(),
                   "insecure plugins folder " + svc.plugins_dir().string() + ": writable by any user (mode 0777)");
    CHECK(report["added"].empty());
    CHECK(run_task(cli, "greet_user").job["status"] == "completed");  // demo.so still serves
    CHECK(get_json(cli, "/health")["status"] == "degraded");

    fs::permissions(svc.plugins_dir(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                           fs::perms::others_read | fs::perms::others_exec);
    CHECK(reload_report(cli)["added"] == json::array({"versioned.so"}));
    CHECK(get_json(cli, "/health")["status"] == "healthy");
}

TEST_CASE("loading writes nothing to disk: no folder to pre-create, no copy to swap") {
    // The attacks on a private copy folder ($TMPDIR/taskhost-<pid> created
    // in advance, a symlink in it, a copy swapped before dlopen) need a
    // file the host writes: there is none. TMPDIR is passed on to the host.
    TempDir tmp;
    const char *previous = std::getenv("TMPDIR");
    const std::string kept = previous ? previous : "";
    ::setenv("TMPDIR", tmp.path().c_str(), 1);
    {
        Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
        if (previous) ::setenv("TMPDIR", kept.c_str(), 1);
        else ::unsetenv("TMPDIR");
        place_copy(svc.plugins_dir(), "versioned_v1.so", "versioned.so", rw_r_r);
        REQUIRE(reload_report(svc.cli())["added"] == json::array({"versioned.so"}));
        CHECK(run_task(svc.cli(), "which_version").job["status"] == "completed");
        // The test's own folder (plugins, logs) is all there is.
        std::vector<std::string> written;
        for (const auto &entry : fs::directory_iterator(tmp.path()))
            if (entry.path() != svc.dir()) written.push_back(entry.path().string());
        for (const auto &entry : fs::directory_iterator(svc.dir())) {
            const std::string name = entry.path().filename().string();
            if (name != "plugins" && !name.starts_with("host-stderr-")) written.push_back(entry.path().string());
        }
        CHECK(written.empty());
    }
    if (previous) ::setenv("TMPDIR", kept.c_str(), 1);
    else ::unsetenv("TMPDIR");
}

TEST_CASE("plugins are loaded from sealed memory: a file truncated after loading changes nothing") {
    bool in_process = false;
    SUBCASE("in-process") { in_process = true; }
    SUBCASE("process") {}
    ServiceOptions options = with_fixtures({}).with_plugin(example_plugin("demo.so"));
    if (in_process) options.in_process();
    Service svc(options);
    auto &cli = svc.cli();
    const fs::path file = place_copy(svc.plugins_dir(), "versioned_v1.so", "versioned.so", rw_r_r);
    REQUIRE(reload_report(cli)["added"] == json::array({"versioned.so"}));
    // What is mapped (by the host, or by the worker that ran the task) is
    // an anonymous sealed file, not the plugin file.
    pid_t mapper = svc.host().pid();
    if (!in_process) {
        REQUIRE(run_task(cli, "which_version").job["status"] == "completed");
        mapper = 0;
        const json system = get_json(cli, "/api/v1/system");
        for (const auto &w : system["worker_processes"])
            if (w["plugin"] == "versioned" && w["state"] != "validating") mapper = w["pid"].get<pid_t>();
        REQUIRE(mapper != 0);
    }
    std::ifstream maps("/proc/" + std::to_string(mapper) + "/maps");
    std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    CHECK_CONTAINS(all, "-versioned.so (deleted)");
    CHECK(all.find(file.string()) == std::string::npos);

    fs::resize_file(file, 100);  // in place: the mapped image would now SIGBUS
    CHECK(run_task(cli, "which_version").artifact["data"]["result"]["version"] == 1);
    json report = reload_report(cli);
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["kept_previous"] == true);
    CHECK_CONTAINS(report["refused"][0]["reason"].get<std::string>(), "not a loadable shared library");
    CHECK(run_task(cli, "which_version").artifact["data"]["result"]["version"] == 1);
    CHECK(svc.host().is_alive());
}

TEST_CASE("a plugin written slowly in place while SIGHUPs arrive never crashes the host") {
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
    auto &cli = svc.cli();
    std::ifstream in(fixture_plugin("versioned_v2.so"), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const fs::path file = svc.plugins_dir() / "versioned.so";
    std::ofstream(file).close();
    fs::permissions(file, rw_r_r);  // whatever the umask: the partial reads must be examined, not refused as insecure
    {
        std::ofstream out(file, std::ios::binary);
        const size_t chunk = bytes.size() / 20 + 1;
        for (size_t at = 0; at < bytes.size(); at += chunk) {
            out.write(bytes.data() + at, static_cast<std::streamsize>(std::min(chunk, bytes.size() - at)));
            out.flush();
            svc.host().send_signal(SIGHUP);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // pacing the writer, not a wait
            REQUIRE(svc.host().is_alive());
        }
    }
    // Finished: the next reload loads it, whatever the partial reads made of it.
    REQUIRE(eventually([&] {
        reload_report(cli);
        json e = entry_for(cli, "versioned.so");
        return !e.is_null() && e["state"] == "active";
    }));
    CHECK(run_task(cli, "which_version").artifact["data"]["result"]["version"] == 2);
    CHECK(svc.host().is_alive());
}

namespace {

// A new plugin that wedges loading: its probe child takes the blow within
// --probe-timeout-s, the version is quarantined at once, and the host
// serves on; a restart does not try it again.
void wedged_load_is_quarantined(const std::string &fault, const std::string &reason) {
    CAPTURE(fault);
    Service svc(
        with_fixtures({}).with_plugin(example_plugin("demo.so")).with_file_db().flags({"--probe-timeout-s", "2"}));
    auto &cli = svc.cli();
    place_copy(svc.plugins_dir(), "load_" + fault + ".so", "wedged.so", rw_r_r);
    const auto started = std::chrono::steady_clock::now();
    json report = reload_report(cli);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    REQUIRE(report["refused"].size() == 1);
    CHECK_CONTAINS(report["refused"][0]["reason"].get<std::string>(), reason);
    json entry = entry_for(cli, "wedged.so");
    CHECK(entry["state"] == "quarantined");
    CHECK(entry["quarantine"]["load_failures"] == 1);
    CHECK_CONTAINS(entry["error"].get<std::string>(), "quarantined: " + reason);
    CHECK(run_task(cli, "greet_user").job["status"] == "completed");
    CHECK(get_json(cli, "/health")["status"] == "degraded");
    CHECK_CONTAINS(health_check_message(cli, "plugins"), "wedged.so is quarantined");
    CHECK(svc.host().is_alive());

    svc.restart();
    CHECK(entry_for(svc.cli(), "wedged.so")["state"] == "quarantined");
    CHECK(run_task(svc.cli(), "greet_user").job["status"] == "completed");
}

}  // namespace

// Under ASan a child's fault is reported and ends it with status 1, not
// the signal: only the phase is asserted for the crashes.
TEST_CASE("a static initializer that segfaults is caught by the probe") {
    wedged_load_is_quarantined("static_segfault", "static initializer ");
}

TEST_CASE("a static initializer that throws is caught by the probe") {
    wedged_load_is_quarantined("static_throw", "static initializer crashed: SIGABRT (signal 6)");
}

TEST_CASE("a static initializer that blocks is caught by the probe") {
    wedged_load_is_quarantined("static_hang", "static initializer did not return within 2 s");
}

TEST_CASE("a static initializer that prints the probe's \"ok\" and exits is not taken for a pass") {
    wedged_load_is_quarantined("static_says_ok", "static initializer ended the process (exit status 0)");
}

TEST_CASE("an init that blocks is caught by the probe") {
    wedged_load_is_quarantined("init_hang", "init did not return within 2 s");
}

TEST_CASE("an init that calls exit() is caught by the probe") {
    wedged_load_is_quarantined("init_exit", "init ended the process (exit status 0)");
}

TEST_CASE("a plugin that is merely refused by its probe is not quarantined") {
    Service svc(with_fixtures({}).with_plugin(example_plugin("demo.so")));
    place_copy(svc.plugins_dir(), "init_fails.so", "init_fails.so", rw_r_r);
    json report = reload_report(svc.cli());
    REQUIRE(report["refused"].size() == 1);
    CHECK(report["refused"][0]["reason"] == "init failed: database unavailable");
    CHECK(entry_for(svc.cli(), "init_fails.so")["state"] == "refused");
}

}  // TEST_SUITE("hostile plugins: loading")
