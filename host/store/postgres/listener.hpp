// What other hosts of a fleet tell this one: a thread of its own LISTENs on
// the fleet's channel and hands each notice to the job layer's callbacks.
// A notice sent while this connection is down is lost; after reconnecting,
// work_available() is called once, and waiters poll besides (see
// Store::FleetEvents).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "store/postgres/connection.hpp"
#include "store/report.hpp"
#include "store/store.hpp"

namespace taskhost::store::postgres {

class Listener {
public:
    Listener(std::string url, const Reporter &report);
    ~Listener();
    Listener(const Listener &) = delete;
    Listener &operator=(const Listener &) = delete;

    // Callbacks from now on; empty ones stop them. Once this returns, no
    // earlier callback is running.
    void set(Store::FleetEvents events);
    // Notices received (tests).
    uint64_t received() const { return received_.load(); }
    // A cancel learnt otherwise (the heartbeat reads it from the job's
    // row): delivered as a notice would be.
    void cancel_asked(const std::string &id);

private:
    std::unique_ptr<Connection> listening_connection();  // connected, LISTENing; throws
    void run(std::unique_ptr<Connection> first);
    void dispatch(std::string_view payload);

    const std::string url_;
    const Reporter &report_;
    int wake_[2] = {-1, -1};  // a pipe: written to stop the thread
    std::mutex events_mu_;    // held while a callback runs
    Store::FleetEvents events_;
    std::atomic<uint64_t> received_{0};
    std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace taskhost::store::postgres
