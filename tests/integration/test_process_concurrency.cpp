// --isolation process under concurrent load, in the suite the TSan stage
// runs: submits, cancels, a crashing worker, a worker killed after its
// timeout and a SIGHUP reload, all at once. Every job must reach the end
// its task calls for, and the host must stay up and not unhealthy.
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace th_test;

namespace {

// Long enough for instrumented workers on a shared machine; waits end as
// soon as their condition holds.
constexpr double job_deadline_s = 120;

std::string active_version(httplib::Client &cli, const std::string &file) {
    for (const auto &p : get_json(cli, "/api/v1/plugins"))
        if (p["file"] == file && p["state"] == "active") return p.value("version", "");
    return "";
}

// The job's status, "" if it cannot be read (no assertion: for any thread).
std::string status_of(httplib::Client &cli, const std::string &id) {
    auto res = cli.Get("/api/v1/jobs/" + id);
    if (!res || res->status != 200) return "";
    const json body = json::parse(res->body, nullptr, false);
    return body.is_object() ? body.value("status", "") : "";
}

// A job a client thread submitted, and the end its task calls for.
struct Expected {
    std::string job_id;
    std::string task;
    std::string status;  // completed, failed, canceled
    std::string error;   // the job's whole error, when not empty
};

// Submits from a client thread: no doctest assertion here (they throw out
// of the thread); what went wrong is kept for the main thread to report.
class Submitter {
public:
    explicit Submitter(const HostProcess &host) : cli_(host.make_client()) {}

    std::string submit(const std::string &task, const json &params) {
        auto res = cli_->Post("/api/v1/tasks/" + task + "/$execute", json{{"params", params}}.dump(),
                              "application/json");
        if (!res || res->status != 202) {
            problem("submit " + task + ": " + (res ? std::to_string(res->status) + " " + res->body : "no answer"));
            return "";
        }
        const json body = json::parse(res->body, nullptr, false);
        return body.is_object() ? body.value("job_id", "") : "";
    }
    bool cancel(const std::string &id) {
        auto res = cli_->Post("/api/v1/jobs/" + id + "/$cancel");
        if (res && (res->status == 200 || res->status == 202)) return true;
        problem("cancel " + id + ": " + (res ? std::to_string(res->status) + " " + res->body : "no answer"));
        return false;
    }
    std::string status(const std::string &id) { return status_of(*cli_, id); }

    std::vector<std::string> problems;

private:
    void problem(std::string what) { problems.push_back(std::move(what)); }
    std::unique_ptr<httplib::Client> cli_;
};

}  // namespace

TEST_SUITE("concurrency") {

TEST_CASE("process isolation: submits, cancels, a crash, a kill and a reload at once; every job ends right") {
    ServiceOptions options = ServiceOptions::examples({"demo.so"});
    options.with_plugin(fixture_plugin("crashers.so")).with_plugin(fixture_plugin("timeouts.so"));
    options.flags({"--isolation", "process", "--max-concurrency", "4", "--stop-grace-s", "2"});
    Service svc(options);
    auto &cli = svc.cli();
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v1.so"), "versioned.so");
    REQUIRE_STATUS(cli.Post("/api/v1/plugins/$reload"), 200);
    REQUIRE(active_version(cli, "versioned.so") == "1.0.0");

    std::mutex mu;  // guards expected and problems
    std::vector<Expected> expected;
    std::vector<std::string> problems;
    auto keep = [&](Submitter &s, std::vector<Expected> mine) {
        std::lock_guard lock(mu);
        for (auto &e : mine)
            if (!e.job_id.empty()) expected.push_back(std::move(e));
        problems.insert(problems.end(), s.problems.begin(), s.problems.end());
    };

    // A job of v1 in flight across the reload finishes on v1.
    const std::string on_v1 = submit(cli, "slow_version", {{"seconds", 3}});

    // Joined on every way out of this scope (a failed REQUIRE included).
    std::vector<std::jthread> clients;
    // Two clients of ordinary jobs.
    for (int c = 0; c < 2; ++c) {
        clients.emplace_back([&, c] {
            Submitter s(svc.host());
            std::vector<Expected> mine;
            for (int i = 0; i < 6; ++i) {
                const std::string name = "c" + std::to_string(c) + "-" + std::to_string(i);
                mine.push_back({s.submit("greet_user", {{"name", name}}), "greet_user", "completed", ""});
            }
            keep(s, std::move(mine));
        });
    }
    // One that cancels cooperative jobs: some at once (pending or running),
    // some once they run.
    clients.emplace_back([&] {
        Submitter s(svc.host());
        std::vector<Expected> mine;
        for (int i = 0; i < 4; ++i) {
            const std::string id = s.submit("slow_task", {{"seconds", 3600}});
            if (id.empty()) continue;
            if (i % 2 == 1) {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
                while (s.status(id) == "pending" && std::chrono::steady_clock::now() < deadline)
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            s.cancel(id);
            mine.push_back({id, "slow_task", "canceled", ""});
        }
        keep(s, std::move(mine));
    });
    // One whose worker crashes, and one whose worker is killed after its timeout.
    clients.emplace_back([&] {
        Submitter s(svc.host());
        keep(s, {{s.submit("segfault", json::object()), "segfault", "failed",
                  std::string("taskhost::WorkerCrashed: worker crashed: ") + worker_segv_cause +
                      " while running task 'segfault' of plugin crashers 1.0.0"},
                 {s.submit("stubborn_sleep", {{"seconds", 3600}}), "stubborn_sleep", "failed",
                  "killed 2 s after its timeout: it did not stop"}});
    });

    // The reload, while those run (and once the v1 job has started, unless
    // the machine is so slow that it has already ended).
    CHECK(eventually([&] { return status_of(cli, on_v1) != "pending"; },
                     std::chrono::seconds(static_cast<int>(job_deadline_s))));
    deploy(svc.plugins_dir(), fixture_plugin("versioned_v2.so"), "versioned.so");
    svc.host().send_signal(SIGHUP);
    for (auto &t : clients) t.join();
    for (const auto &p : problems) FAIL_CHECK(p);
    CHECK(expected.size() == 12 + 4 + 2);
    CHECK(eventually([&] { return active_version(cli, "versioned.so") == "2.0.0"; },
                     std::chrono::seconds(static_cast<int>(job_deadline_s))));

    for (const Expected &e : expected) {
        CAPTURE(e.task);
        CAPTURE(e.job_id);
        const json job = wait_job(cli, e.job_id, job_deadline_s);
        CHECK(job["status"] == e.status);
        if (!e.error.empty()) CHECK(job["error"] == e.error);
    }
    const json v1_job = wait_job(cli, on_v1, job_deadline_s);
    REQUIRE(v1_job["status"] == "completed");
    CHECK(get_artifact(cli, v1_job["result"])["data"]["result"]["version"] == 1);

    // The host is up, not unhealthy, and serves both old and new plugins.
    CHECK(svc.host().is_alive());
    CHECK(get_json(cli, "/health")["status"] != "unhealthy");
    CHECK(run_task(cli, "which_version", json::object()).artifact["data"]["result"]["version"] == 2);
    CHECK(run_task(cli, "greet_user", {{"name", "after"}}).job["status"] == "completed");
    // One crash and one kill, each counted once its job's thread saw its worker die.
    CHECK(eventually([&] {
        const auto scraped = cli.Get("/metrics");
        return scraped && contains(scraped->body, "\ntaskhost_worker_crashes_total{plugin=\"crashers\"} 1\n") &&
               contains(scraped->body, "\ntaskhost_worker_kills_total{reason=\"given_up\"} 1\n");
    }));
}

}  // TEST_SUITE("concurrency")
