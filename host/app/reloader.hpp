// Runs reloads on a thread of its own. Requests (SIGHUP, --watch, $reload)
// are coalesced: a burst of them while a reload runs causes exactly one
// more reload, never a queue of them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "http/server.hpp"

namespace taskhost::app {

class Reloader final : public http::ReloadRequests {
public:
    // `reload` runs one reload and returns its report (ReloadReport JSON).
    explicit Reloader(std::function<std::string()> reload);
    ~Reloader() override;  // stop() with no deadline
    Reloader(const Reloader &) = delete;
    Reloader &operator=(const Reloader &) = delete;

    void request();
    // request(), then waits until `deadline` for a reload that started after
    // the request to finish: its report, or nullopt if it has not finished
    // by then (it goes on), the waiters were released or the thread stops.
    std::optional<std::string> request_and_wait(std::chrono::steady_clock::time_point deadline) override;
    void release_waiters() override;
    // Ends the thread once a reload in progress is over. False if that has
    // not happened by `deadline` (the thread is then left to itself).
    bool stop(std::chrono::steady_clock::time_point deadline);

private:
    void loop();

    const std::function<std::string()> reload_;
    std::mutex mu_;  // guards everything below but thread_
    std::condition_variable cv_;
    // Requests are numbered; a reload serves every request made before it
    // started, and when it ends `finished_` is the last one it served.
    uint64_t requested_ = 0;
    uint64_t started_ = 0;
    uint64_t finished_ = 0;
    std::string last_report_;  // of the reload that served `finished_`
    std::condition_variable finished_cv_;
    bool waiters_released_ = false;
    bool stopping_ = false;
    bool done_ = false;  // the thread has returned
    std::condition_variable done_cv_;
    std::thread thread_;
};

}  // namespace taskhost::app
