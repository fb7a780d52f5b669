#include "jobs/deadlines.hpp"

#include <algorithm>

#include "util/thread_name.hpp"

namespace taskhost::jobs {

void Deadlines::start() {
    thread_ = std::thread([this] { loop(); });
}

void Deadlines::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Deadlines::add(std::chrono::steady_clock::time_point at, const std::shared_ptr<ActiveJob> &job, Kind kind,
                    int attempt) {
    {
        std::lock_guard lock(mu_);
        // Jobs gone long before their deadline (a scheduled job canceled a
        // year early) leave entries that only their time would pop: swept
        // whenever the heap has doubled, so it stays within twice the live.
        if (heap_.size() >= sweep_at_) {
            std::erase_if(heap_, [](const Deadline &d) { return d.job.expired(); });
            std::make_heap(heap_.begin(), heap_.end(), std::greater<>{});
            sweep_at_ = std::max<size_t>(kMinSweep, 2 * heap_.size());
        }
        heap_.push_back({at, job, kind, attempt});
        std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
    }
    cv_.notify_one();
}

void Deadlines::loop() {
    name_this_thread("th-timer");
    std::unique_lock lock(mu_);
    for (;;) {
        if (stop_) return;
        if (heap_.empty()) {
            cv_.wait(lock);
            continue;
        }
        const auto next = heap_.front().at;
        if (std::chrono::steady_clock::now() < next) {
            cv_.wait_until(lock, next);
            continue;
        }
        std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
        auto due = std::move(heap_.back());
        heap_.pop_back();
        if (auto job = due.job.lock()) {
            lock.unlock();
            on_due_(job, due.kind, due.attempt);
            lock.lock();
        }
    }
}

}  // namespace taskhost::jobs
