// --isolation process: tasks run in worker processes. The hostile plugins
// that end the host in process now cost one job each: the host stays up,
// jobs on other workers complete, and the worker is replaced.
#include "test_util.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <set>

using namespace th_test;

namespace {

ServiceOptions isolated(std::vector<std::string> fixtures, std::vector<std::string> more_flags = {}) {
    ServiceOptions o = ServiceOptions::examples({"demo.so", "storage.so"});
    for (const auto &f : fixtures) o.with_plugin(fixture_plugin(f));
    o.flags({"--isolation", "process"});
    o.flags(std::move(more_flags));
    return o;
}

// The worker processes running or ready to run jobs (not the one per
// generation that checks params for submits).
json workers_of(httplib::Client &cli) {
    json out = json::array();
    const json system = get_json(cli, "/api/v1/system");
    for (const auto &w : system["worker_processes"])
        if (w["state"] != "validating") out.push_back(w);
    return out;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// The pids of the host's children (its worker processes), from /proc.
std::set<pid_t> children_of(pid_t parent) {
    std::set<pid_t> out;
    for (const auto &entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent && state != 'Z') out.insert(std::stoi(name));
    }
    return out;
}

}  // namespace

TEST_SUITE("process isolation") {

TEST_CASE("a task runs in a worker process, not in the host") {
    Service svc(isolated({"hogs.so"}));
    auto &cli = svc.cli();
    const json result = run_task(cli, "whoami").artifact["data"]["result"];
    CHECK(result["pid"].get<pid_t>() != svc.host().pid());
    CHECK(result["parent"].get<pid_t>() == svc.host().pid());
    // The same worker serves the next job of its plugin.
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] == result["pid"]);
    const json workers = workers_of(cli);
    REQUIRE(workers.size() == 1);
    CHECK(workers[0]["pid"] == result["pid"]);
    CHECK(workers[0]["plugin"] == "hogs");
    CHECK(workers[0]["state"] == "idle");
    CHECK(workers[0]["jobs_served"] == 2);
    CHECK(workers[0]["rss_bytes"].get<int64_t>() > 0);
}

TEST_CASE("params a quick task refuses in the worker that would run it: the same 400, no job") {
    Service svc(isolated({}));
    auto &cli = svc.cli();
    const std::string execute = "/api/v1/tasks/greet_user/$execute?wait=5";
    const json bad = {{"params", {{"name", 5}}}};
    // Before any run: checked first, by the worker that checks params.
    const json cold = check_problem(post_json(cli, execute, bad), 400, "Invalid params for task 'greet_user'");
    // Known to be quick now: checked in the call that runs the job.
    for (int i = 0; i < 2; ++i) run_task(cli, "greet_user", {{"name", "Ada"}});
    for (int i = 0; i < 2; ++i) CHECK(check_problem(post_json(cli, execute, bad), 400)["detail"] == cold["detail"]);
    CHECK(get_json(cli, "/api/v1/jobs").size() == 2);
    // The worker that refused them ran no job for them, and runs the next.
    const json workers = workers_of(cli);
    REQUIRE(workers.size() == 1);
    CHECK(workers[0]["jobs_served"] == 2);
    const json result = run_task(cli, "greet_user", {{"name", "Bo"}}).artifact["data"]["result"];
    CHECK(result.dump().find("Bo") != std::string::npos);
}

TEST_CASE("every host service works from a worker: artifacts, database, session, scheduler, progress") {
    Service svc(isolated({}));
    auto &cli = svc.cli();
    // Artifacts: the task saves one; the host stores it.
    const json saved = run_task(cli, "store_result", {{"data", {{"x", 1}}}}).artifact["data"]["result"];
    CHECK(get_artifact(cli, saved["artifact_id"])["data"] == json{{"x", 1}});
    // Database and Session (the storage plugin's init created and filled its table).
    CHECK(run_task(cli, "count_users").artifact["data"]["result"]["user_count"] == 3);
    // Context: the job id the task sees is its own.
    const Finished greeted = run_task(cli, "greet_user", {{"name", "worker"}});
    CHECK(greeted.artifact["data"]["result"] == json{{"message", "Hello, worker!"}});
}

TEST_CASE("a worker that dies inside a Session has its transaction rolled back") {
    Service svc(isolated({"hogs.so"}).with_file_db());
    auto &cli = svc.cli();
    CHECK_CONTAINS(run_task(cli, "crash_in_session", json::object(), "failed").job["error"].get<std::string>(),
                   "worker crashed: SIGABRT while running task 'crash_in_session'");
    CHECK(run_task(cli, "count_rows").artifact["data"]["result"]["rows"] == 0);
    // The database is not left locked: the host and tasks keep writing.
    CHECK(run_task(cli, "store_result", {{"data", 1}}).job["status"] == "completed");
}

TEST_CASE("a crash costs its job only: the host stays up, other jobs complete, the worker is replaced") {
    Service svc(isolated({"crashers.so"}, {"--max-concurrency", "3"}));
    auto &cli = svc.cli();
    // A job beside the crash, on another worker, runs through it.
    const std::string beside = submit(cli, "slow_task", {{"seconds", 1}});
    wait_status(cli, beside, "running");
    struct Crash {
        std::string task, cause;
        json params;
    };
    for (const Crash &crash : std::vector<Crash>{{"segfault", worker_segv_cause, json::object()},
                                                 {"exit_now", "exit status 3", json{{"code", 3}}}}) {
        const std::string &task = crash.task, &cause = crash.cause;
        const json &params = crash.params;
        CAPTURE(task);
        const Finished crashed = run_task(cli, task, params, "failed");
        CHECK(crashed.job["error"] == "taskhost::WorkerCrashed: worker crashed: " + cause + " while running task '" +
                                          task + "' of plugin crashers 1.0.0");
        CHECK(svc.host().is_alive());
    }
    CHECK(wait_job(cli, beside)["status"] == "completed");
    CHECK(run_task(cli, "greet_user", {{"name", "after"}}).job["status"] == "completed");
    const auto scraped = cli.Get("/metrics");
    REQUIRE_STATUS(scraped, 200);
    CHECK_CONTAINS(scraped->body, "\ntaskhost_worker_crashes_total{plugin=\"crashers\"} 2\n");
    CHECK(get_json(cli, "/health")["status"] != "unhealthy");
    // Two crashes quarantine the version, as two crashes of the host would.
    REQUIRE(eventually([&] {
        auto res = post_json(cli, "/api/v1/tasks/segfault/$execute", json{{"params", json::object()}});
        return res && res->status == 503;
    }));
}

TEST_CASE("a task past its timeout that ignores it is killed after the grace; the next job gets a new worker") {
    Service svc(isolated({"timeouts.so", "hogs.so"}, {"--stop-grace-s", "0.5"}));
    auto &cli = svc.cli();
    const pid_t before = run_task(cli, "whoami").artifact["data"]["result"]["pid"];
    const std::string id = submit(cli, "stubborn_sleep", {{"seconds", 3600}});
    const json job = wait_job(cli, id, 10);  // 0.3 s timeout + 0.5 s grace
    CHECK(job["status"] == "failed");
    CHECK(job["error"] == "killed 0.5 s after its timeout: it did not stop");
    // Killed, not stuck: the host reports no stuck worker.
    CHECK_FALSE(get_json(cli, "/health")["checks"].contains("workers"));
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] == before);  // another plugin's worker
    // A canceled job that ignores it is killed too.
    auto submitted = post_json(cli, "/api/v1/tasks/spin/$execute", {{"params", {{"seconds", 3600}}}});
    REQUIRE_STATUS(submitted, 202);
    const std::string spinning = body_json(submitted)["job_id"];
    wait_status(cli, spinning, "running");
    REQUIRE_STATUS(cli.Post("/api/v1/jobs/" + spinning + "/$cancel"), 202);
    const json canceled = wait_job(cli, spinning, 10);
    CHECK(canceled["status"] == "canceled");
    CHECK(canceled["error"] == "killed 0.5 s after being canceled: it did not stop");
    // Counted once its thread has seen the worker die, just after the job's end.
    CHECK(eventually([&] {
        const auto scraped = cli.Get("/metrics");
        return scraped && contains(scraped->body, "\ntaskhost_worker_kills_total{reason=\"given_up\"} 2\n");
    }));
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] != before);  // hogs' worker was replaced
}

TEST_CASE("a cooperative task in a worker sees its cancel without a kill") {
    Service svc(isolated({"timeouts.so"}, {"--stop-grace-s", "30"}));
    auto &cli = svc.cli();
    auto submitted =
        post_json(cli, "/api/v1/tasks/polite_sleep/$execute", {{"params", {{"seconds", 3600}}}, {"timeout_s", 3600}});
    REQUIRE_STATUS(submitted, 202);
    const std::string id = body_json(submitted)["job_id"];
    wait_status(cli, id, "running");
    const auto asked = std::chrono::steady_clock::now();
    REQUIRE_STATUS(cli.Post("/api/v1/jobs/" + id + "/$cancel"), 202);
    const json job = wait_job(cli, id, 10);
    CHECK(job["status"] == "canceled");
    CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(5));  // not the 30 s grace
}

TEST_CASE("a memory hog under --worker-memory fails alone, naming the limit") {
#if defined(TH_TEST_ASAN)
    // AddressSanitizer's shadow memory alone is terabytes of address space:
    // under RLIMIT_AS an instrumented worker cannot allocate at all.
    MESSAGE("skipped under AddressSanitizer");
    return;
#endif
    Service svc(isolated({"hogs.so"}, {"--worker-memory", "512MiB"}));
    auto &cli = svc.cli();
    const Finished hog = run_task(cli, "allocate", {{"mib", 1024}}, "failed");
    CHECK_CONTAINS(hog.job["error"].get<std::string>(), "bad_alloc");
    CHECK_CONTAINS(hog.job["error"].get<std::string>(), "--worker-memory, is 512 MiB");
    CHECK(run_task(cli, "allocate", {{"mib", 16}}).job["status"] == "completed");
    CHECK(svc.host().is_alive());
}

TEST_CASE("a job over --worker-cpu-seconds is killed by the kernel and says so") {
    Service svc(isolated({"hogs.so"}, {"--worker-cpu-seconds", "1"}));
    auto &cli = svc.cli();
    const Finished spun = run_task(cli, "spin", {{"seconds", 30}}, "failed");
    CHECK_CONTAINS(spun.job["error"].get<std::string>(), "worker crashed: SIGXCPU while running task 'spin'");
    CHECK_CONTAINS(spun.job["error"].get<std::string>(), "--worker-cpu-seconds 1 s");
    // The limit is per job: short jobs on the replacement worker keep running.
    for (int i = 0; i < 3; ++i) CHECK(run_task(cli, "spin", {{"seconds", 0.2}}).job["status"] == "completed");
}

TEST_CASE("--worker-max-jobs recycles a worker; a detached thread dies with its worker") {
    Service svc(isolated({"hogs.so"}, {"--worker-max-jobs", "2"}));
    auto &cli = svc.cli();
    const pid_t first = run_task(cli, "detach_thread").artifact["data"]["result"]["pid"];
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] == first);
    // Two jobs served: the worker is replaced, its leftover thread with it.
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] != first);
    CHECK(eventually([&] { return !process_exists(first); }));
}

TEST_CASE("worker processes die with the host, even a SIGKILLed one") {
    Service svc(isolated({"hogs.so", "timeouts.so"}, {"--max-concurrency", "2"}));
    auto &cli = svc.cli();
    const std::string busy = submit(cli, "spin", {{"seconds", 3600}});
    wait_status(cli, busy, "running");
    run_task(cli, "whoami");
    const std::set<pid_t> workers = children_of(svc.host().pid());
    REQUIRE(workers.size() == 3);  // two running jobs, one checking params
    svc.kill9();
    CHECK(eventually([&] {
        for (pid_t pid : workers)
            if (process_exists(pid)) return false;
        return true;
    }));
}

TEST_CASE("a plugin named in --in-process-plugins runs in the host") {
    Service svc(isolated({"hogs.so"}, {"--in-process-plugins", "hogs"}));
    auto &cli = svc.cli();
    CHECK(run_task(cli, "whoami").artifact["data"]["result"]["pid"] == svc.host().pid());
    CHECK(workers_of(cli).empty());
}

TEST_CASE("a traceback thrown in a worker is symbolized by the host") {
    Service svc(isolated({"thrower.so"}));
    auto &cli = svc.cli();
    const Finished failed = run_task(cli, "deep", json::object(), "failed");
    const std::string traceback = failed.job["error_traceback"];
    CHECK_CONTAINS(traceback, "plugin thrower.so build-id ");
    CHECK_CONTAINS(traceback, "fail_deep(int)");
    CHECK_CONTAINS(traceback, "thrower.cpp:");
}

}  // TEST_SUITE("process isolation")
