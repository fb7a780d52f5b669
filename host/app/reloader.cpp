#include "app/reloader.hpp"

namespace taskhost::app {

Reloader::Reloader(std::function<std::string()> reload) : reload_(std::move(reload)), thread_([this] { loop(); }) {}

Reloader::~Reloader() { stop(std::chrono::steady_clock::time_point::max()); }

bool Reloader::stop(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    stopping_ = true;
    cv_.notify_one();
    finished_cv_.notify_all();  // waiters give up
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
        ++requested_;
    }
    cv_.notify_one();
}

std::optional<std::string> Reloader::request_and_wait(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    const uint64_t mine = ++requested_;
    cv_.notify_one();
    finished_cv_.wait_until(lock, deadline, [&] { return finished_ >= mine || waiters_released_ || stopping_; });
    if (finished_ >= mine) return last_report_;
    return std::nullopt;
}

void Reloader::release_waiters() {
    {
        std::lock_guard lock(mu_);
        waiters_released_ = true;
    }
    finished_cv_.notify_all();
}

void Reloader::loop() {
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return requested_ > started_ || stopping_; });
        if (stopping_) {
            done_ = true;
            done_cv_.notify_all();
            return;
        }
        const uint64_t serving = started_ = requested_;
        lock.unlock();
        std::string report = reload_();
        lock.lock();
        finished_ = serving;
        last_report_ = std::move(report);
        finished_cv_.notify_all();
    }
}

}  // namespace taskhost::app
