// Runs reloads on a thread of its own. Requests (SIGHUP, --watch) are
// coalesced: a burst of them while a reload runs causes exactly one more
// reload, never a queue of them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace taskhost::app {

class Reloader {
public:
    explicit Reloader(std::function<void()> reload);
    ~Reloader();  // stop() with no deadline
    Reloader(const Reloader &) = delete;
    Reloader &operator=(const Reloader &) = delete;

    void request();
    // Ends the thread once a reload in progress is over. False if that has
    // not happened by `deadline` (the thread is then left to itself).
    bool stop(std::chrono::steady_clock::time_point deadline);

private:
    void loop();

    const std::function<void()> reload_;
    std::mutex mu_;  // guards pending_ and stopping_
    std::condition_variable cv_;
    bool pending_ = false;
    bool stopping_ = false;
    bool done_ = false;  // the thread has returned
    std::condition_variable done_cv_;
    std::thread thread_;
};

}  // namespace taskhost::app
