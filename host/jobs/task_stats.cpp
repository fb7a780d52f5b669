#include "jobs/task_stats.hpp"

#include <algorithm>
#include <mutex>

namespace taskhost::jobs {

bool TaskStats::quick(std::optional<double> wait_s) const {
    if (long_run_seen_.load(std::memory_order_relaxed)) return false;
    const int64_t recent = recent_run_us_.load(std::memory_order_relaxed);
    if (!wait_s) return recent <= kUnwaitedRunMaxUs;
    return recent <= kWaitedRunMaxUs && static_cast<double>(recent) * 100 <= *wait_s * 1e6;
}

void TaskStats::record_cut_short(int64_t wall_us) {
    if (wall_us >= kLongRunUs) long_run_seen_.store(true, std::memory_order_relaxed);
}

void TaskStats::record_run(int64_t code_us, int64_t wall_us) {
    record_cut_short(wall_us);
    const int64_t us = std::min(code_us, wall_us);
    int64_t old = recent_run_us_.load(std::memory_order_relaxed), next;
    do {
        next = old == kUnknown ? us : std::max(us, old - old / 16);
    } while (next != old && !recent_run_us_.compare_exchange_weak(old, next, std::memory_order_relaxed));
}

void TaskStats::use_generation(uint64_t generation) {
    if (generation_.load(std::memory_order_relaxed) == generation) return;
    // Two first jobs of a new generation may both reset: the same result.
    generation_.store(generation, std::memory_order_relaxed);
    recent_run_us_.store(kUnknown, std::memory_order_relaxed);
    long_run_seen_.store(false, std::memory_order_relaxed);
}

TaskStats &TaskStatsBook::of(std::string_view task_name) {
    {
        std::shared_lock lock(mu_);
        if (auto it = tasks_.find(task_name); it != tasks_.end()) return *it->second;
    }
    metrics::TaskCounters &counters = metrics_.task(task_name);
    std::unique_lock lock(mu_);
    auto &slot = tasks_[std::string(task_name)];
    if (!slot) slot = std::make_unique<TaskStats>(counters);
    return *slot;
}

}  // namespace taskhost::jobs
