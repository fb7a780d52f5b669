// What the job manager keeps per task, by name, so that it outlives
// reloads: the task's metrics counters and how long its recent runs took.
// The run times decide whether a submitter may run a job itself instead of
// handing it to a worker (JobManager::execute).
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "metrics/metrics.hpp"

namespace taskhost::jobs {

class TaskStats {
public:
    explicit TaskStats(metrics::TaskCounters &counters) : counters(counters) {}

    metrics::TaskCounters &counters;

    // Known to be quick enough for its submitter to run it: with ?wait, its
    // slowest recent run took under 1% of the wait and under 10 ms; without,
    // under 200 µs (less than the hand-off to a worker and back). Never once
    // a run took 100 ms or more: params can make any task slow, so a
    // submitter waits for a long run at most once per task and version.
    bool quick(std::optional<double> wait_s) const;
    // A run of the task's code took `code_us` microseconds by the clock of
    // where it ran, `wall_us` by the host's (with the hand-off to a worker
    // process, and any start of one). The recent slowest (of the smaller)
    // decays by 1/16 per run, so a run slowed by the scheduler is forgiven;
    // a long run is judged by the host's clock alone, so a worker that
    // under-reports cannot make a slow task pass for quick.
    void record_run(int64_t code_us, int64_t wall_us);
    // A run cut short (canceled, timed out, given up on) after `wall_us`:
    // not a sample of the task's time, but a long one still shows that
    // params can make the task slow.
    void record_cut_short(int64_t wall_us);
    // Runs of another generation of the task's plugin were other code:
    // its statistics start afresh when a job of a new generation comes.
    void use_generation(uint64_t generation);

private:
    static constexpr int64_t kUnknown = std::numeric_limits<int64_t>::max();
    static constexpr int64_t kWaitedRunMaxUs = 10'000;
    static constexpr int64_t kUnwaitedRunMaxUs = 200;
    static constexpr int64_t kLongRunUs = 100'000;

    std::atomic<uint64_t> generation_{0};
    std::atomic<int64_t> recent_run_us_{kUnknown};  // the slowest recent run; kUnknown before the first
    std::atomic<bool> long_run_seen_{false};
};

// The TaskStats of every task seen, by name.
class TaskStatsBook {
public:
    explicit TaskStatsBook(metrics::Metrics &metrics) : metrics_(metrics) {}
    // Created on first use; the reference stays valid for the life of this object.
    TaskStats &of(std::string_view task_name);

private:
    metrics::Metrics &metrics_;
    std::shared_mutex mu_;  // guards the map; the entries are atomics
    std::map<std::string, std::unique_ptr<TaskStats>, std::less<>> tasks_;
};

}  // namespace taskhost::jobs
