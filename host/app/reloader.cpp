#include "app/reloader.hpp"

namespace taskhost::app {

Reloader::Reloader(std::function<void()> reload) : reload_(std::move(reload)), thread_([this] { loop(); }) {}

Reloader::~Reloader() { stop(std::chrono::steady_clock::time_point::max()); }

bool Reloader::stop(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_one();
    const auto done = [&] { return done_; };
    if (deadline == std::chrono::steady_clock::time_point::max()) done_cv_.wait(lock, done);
    if (!done_cv_.wait_until(lock, deadline, done)) {
        if (thread_.joinable()) thread_.detach();
        return false;
    }
    lock.unlock();
    if (thread_.joinable()) thread_.join();
    return true;
}

void Reloader::request() {
    {
        std::lock_guard lock(mu_);
        pending_ = true;
    }
    cv_.notify_one();
}

void Reloader::loop() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return pending_ || stopping_; });
        if (stopping_) {
            done_ = true;
            done_cv_.notify_all();
            return;
        }
        pending_ = false;
        lock.unlock();
        reload_();
        lock.lock();
    }
}

}  // namespace taskhost::app
