// The threads that serve requests. A thread is needed only while a request
// is being served (the front door keeps connections in between), so the
// pool starts small, adds a thread whenever work arrives and none is idle,
// up to a hard maximum, and threads above the initial count exit after
// being idle for a while.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "util/thread_name.hpp"

namespace taskhost::http {

class ElasticPool {
public:
    ElasticPool(size_t initial, size_t maximum, std::chrono::milliseconds idle_exit = std::chrono::seconds(10))
        : base_(initial), max_(std::max(initial, maximum)), idle_exit_(idle_exit) {
        std::lock_guard lock(mu_);
        for (size_t i = 0; i < initial; ++i) spawn_locked();
    }
    ~ElasticPool() { shutdown(); }
    ElasticPool(const ElasticPool &) = delete;
    ElasticPool &operator=(const ElasticPool &) = delete;

    void post(std::function<void()> fn) {
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            reap_locked();
            jobs_.push_back(std::move(fn));
            if (idle_ < jobs_.size() && threads_.size() < max_) spawn_locked();
        }
        cv_.notify_one();
    }

    // Runs what was posted, then joins every thread.
    void shutdown() {
        std::list<std::thread> threads;
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            stopping_ = true;
        }
        cv_.notify_all();
        for (;;) {
            {
                std::lock_guard lock(mu_);
                reap_locked();
                if (threads_.empty()) return;
                threads.splice(threads.end(), threads_);
            }
            for (auto &t : threads) t.join();
            threads.clear();
        }
    }

    size_t threads() const {
        std::lock_guard lock(mu_);
        return threads_.size() - exited_.size();
    }

private:
    using Threads = std::list<std::thread>;

    void spawn_locked() {
        threads_.emplace_back();
        auto self = std::prev(threads_.end());
        *self = std::thread([this, self] { loop(self); });
    }

    // Joins the threads that have left (they only have to return).
    void reap_locked() {
        for (auto it : exited_) {
            it->join();
            threads_.erase(it);
        }
        exited_.clear();
    }

    void loop(Threads::iterator self) {
        name_this_thread("th-http");
        std::unique_lock lock(mu_);
        for (;;) {
            ++idle_;
            const bool work = cv_.wait_for(lock, idle_exit_, [&] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) {
                if (stopping_) return;  // shutdown() joins it
                if (!work && threads_.size() - exited_.size() > base_) {
                    exited_.push_back(self);
                    return;
                }
                continue;
            }
            std::function<void()> fn = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            fn();
            fn = nullptr;
            lock.lock();
        }
    }

    const size_t base_, max_;
    const std::chrono::milliseconds idle_exit_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    Threads threads_;
    std::vector<Threads::iterator> exited_;
    size_t idle_ = 0;
    bool stopping_ = false;
};

}  // namespace taskhost::http
