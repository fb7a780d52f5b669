// A host's heartbeat in a fleet: on a connection of its own, every third of
// the lease it says it is alive (the hosts table), renews the leases of the
// jobs it runs, and fails the running jobs of any host whose lease ran out
// ("host X was lost while running this job"): a dead host's jobs end within
// one lease and a third, whichever host notices.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/postgres/connection.hpp"
#include "store/postgres/job_sql.hpp"
#include "store/report.hpp"

namespace taskhost::store::postgres {

class Heartbeat {
public:
    // Beats once before it returns (so the host is listed at once), then
    // on its own thread.
    Heartbeat(std::string url, HostLease lease, const Reporter &report);
    ~Heartbeat();
    Heartbeat(const Heartbeat &) = delete;
    Heartbeat &operator=(const Heartbeat &) = delete;

    // What the hosts table shows of this host from the next beat on.
    void describe(std::string address, std::string version, std::string plugins_json);
    // Beats that reached the database; jobs it failed for lost hosts.
    uint64_t beats() const { return beats_.load(); }
    uint64_t reaped() const { return reaped_.load(); }

private:
    void beat();
    void run();

    const std::string url_;
    const HostLease lease_;
    const Reporter &report_;
    const int64_t started_at_;
    std::unique_ptr<Connection> conn_;  // the beating thread's (or the constructor's)
    bool failing_ = false;              // the last beat failed (reported once per streak)

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;                                   // guarded by mu_
    bool beat_now_ = false;                               // guarded by mu_
    std::string address_, version_, plugins_json_ = "[]";  // guarded by mu_
    std::atomic<uint64_t> beats_{0}, reaped_{0};
    std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace taskhost::store::postgres
