// Runs reloads on a thread of its own. Requests (SIGHUP, --watch) are
// coalesced: a burst of them while a reload runs causes exactly one more
// reload, never a queue of them.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace taskhost::app {

class Reloader {
public:
    explicit Reloader(std::function<void()> reload);
    ~Reloader();  // waits for a reload in progress, then ends the thread
    Reloader(const Reloader &) = delete;
    Reloader &operator=(const Reloader &) = delete;

    void request();

private:
    void loop();

    const std::function<void()> reload_;
    std::mutex mu_;  // guards pending_ and stopping_
    std::condition_variable cv_;
    bool pending_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace taskhost::app
