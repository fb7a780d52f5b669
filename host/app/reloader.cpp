#include "app/reloader.hpp"

namespace taskhost::app {

Reloader::Reloader(std::function<void()> reload) : reload_(std::move(reload)), thread_([this] { loop(); }) {}

Reloader::~Reloader() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
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
        if (stopping_) return;
        pending_ = false;
        lock.unlock();
        reload_();
        lock.lock();
    }
}

}  // namespace taskhost::app
