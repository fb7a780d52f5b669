// cpp-httplib runs each connection on one pool thread for as long as it
// stays open (keep-alive, SSE). A fixed pool smaller than the number of
// clients makes later clients wait for earlier ones to go away; this pool
// starts small and adds a thread whenever work arrives and none is idle, up
// to a hard maximum.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

#include "util/thread_name.hpp"

namespace taskhost::http {

class ElasticPool final : public httplib::TaskQueue {
public:
    ElasticPool(size_t initial, size_t maximum) : max_(std::max(initial, maximum)) {
        std::lock_guard lock(mu_);
        for (size_t i = 0; i < initial; ++i) spawn_locked();
    }
    ~ElasticPool() override { shutdown(); }

    void enqueue(std::function<void()> fn) override {
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            jobs_.push_back(std::move(fn));
            if (idle_ < jobs_.size() && threads_.size() < max_) spawn_locked();
        }
        cv_.notify_one();
    }

    void shutdown() override {
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto &t : threads_) t.join();
    }

private:
    void spawn_locked() {
        threads_.emplace_back([this] { loop(); });
    }

    void loop() {
        name_this_thread("th-http");
        for (;;) {
            std::function<void()> fn;
            {
                std::unique_lock lock(mu_);
                ++idle_;
                cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
                --idle_;
                if (jobs_.empty()) return;  // stopping and drained
                fn = std::move(jobs_.front());
                jobs_.pop_front();
            }
            fn();
        }
    }

    const size_t max_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool stopping_ = false;
};

}  // namespace taskhost::http
