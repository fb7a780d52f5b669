// A host's heartbeat in a fleet: on a connection of its own, every third of
// the lease it says it is alive (the hosts table), renews the leases of the
// jobs it runs, and fails the running jobs of any host whose lease ran out
// ("host X was lost while running this job"): a dead host's jobs end within
// one lease and a third, whichever host notices. A host reaps only once it
// has itself beaten for a whole lease: after the database was away, every
// live host has renewed its leases by then, so only the dead are reaped.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include <thread>

#include "store/postgres/connection.hpp"
#include "store/postgres/job_sql.hpp"
#include "store/report.hpp"

namespace taskhost::store::postgres {

class Heartbeat {
public:
    // Beats once before it returns (so the host is listed at once), then
    // on its own thread.
    // `after_beat` runs on the heartbeat's thread after each beat that got
    // through (the store retries job ends kept while the server was away);
    // `cancel_asked` for each running job of this host whose row says
    // another host asked to cancel it (a lost notice is made good).
    // `durable_commits`: Connection's (a beat fails lost hosts' jobs).
    Heartbeat(std::string url, bool durable_commits, HostLease lease, const Reporter &report,
              std::function<void()> after_beat = {}, std::function<void(const std::string &)> cancel_asked = {});
    ~Heartbeat();
    Heartbeat(const Heartbeat &) = delete;
    Heartbeat &operator=(const Heartbeat &) = delete;

    // What the hosts table shows of this host from the next beat on.
    void describe(std::string address, std::string version, std::string plugins_json, std::string tasks_json);
    // Beats that reached the database; jobs it failed for lost hosts.
    uint64_t beats() const { return beats_.load(); }
    uint64_t reaped() const { return reaped_.load(); }

private:
    void beat();
    void run();

    const std::string url_;
    const bool durable_commits_;
    const HostLease lease_;
    const Reporter &report_;
    const int64_t started_at_;
    const std::function<void()> after_beat_;
    const std::function<void(const std::string &)> cancel_asked_;
    // Since when beats get through without a failure (the thread's).
    std::optional<std::chrono::steady_clock::time_point> beating_since_;
    std::unique_ptr<Connection> conn_;  // the beating thread's (or the constructor's)
    bool failing_ = false;              // the last beat failed (reported once per streak)

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;                                   // guarded by mu_
    bool beat_now_ = false;                               // guarded by mu_
    std::string address_, version_, plugins_json_ = "[]", tasks_json_ = "[]";  // guarded by mu_
    // describe() calls, and the count whose tasks the hosts table has (mu_).
    // Unequal at first: the first beat writes the tasks.
    uint64_t described_ = 1, tasks_sent_ = 0;
    std::atomic<uint64_t> beats_{0}, reaped_{0};
    std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace taskhost::store::postgres
