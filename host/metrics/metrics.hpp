// Counters and histograms for GET /metrics (Prometheus text format 0.0.4).
// Everything on the job and request paths is a relaxed atomic increment;
// the text is only built when scraped.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace taskhost::metrics {

// A Prometheus histogram of durations, in seconds.
class Histogram {
public:
    // Upper bounds in seconds, from 100 µs to 30 min; +Inf is implicit.
    static constexpr std::array<double, 14> kBounds = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                                       0.5,    1,      5,     10,    60,   300,  1800};
    void observe_us(int64_t us);
    // NAME_bucket{LABELS,le=...}, NAME_sum{LABELS}, NAME_count{LABELS}.
    void render(std::string &out, std::string_view name, std::string_view labels) const;

private:
    std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // not cumulative; last: +Inf
    std::atomic<uint64_t> sum_us_{0};
};

// What happened to the jobs of one task (by name: it outlives reloads).
struct TaskCounters {
    std::atomic<uint64_t> submitted{0};
    std::atomic<uint64_t> rejected_queue_full{0};
    std::atomic<uint64_t> rejected_invalid{0};
    std::atomic<uint64_t> retried{0};                 // failed attempts that run again
    std::array<std::atomic<uint64_t>, 4> finished{};  // by Metrics::End
    Histogram queue_wait;                             // submitted → started
    Histogram run;                                    // started → finished
};

class Metrics {
public:
    // How a job ended; `deleted`: deleted while still pending or running.
    enum class End { completed = 0, failed = 1, canceled = 2, deleted = 3 };

    // The counters of task `name`, created on first use; the reference stays
    // valid for the life of this object.
    TaskCounters &task(std::string_view name);
    void count_response(int status);
    // This run started after the previous one crashed: its crash record was
    // found at start-up (and the crash charged to the plugin code it names).
    void previous_run_crashed() { previous_run_crashed_.store(true, std::memory_order_relaxed); }

    // Appends the families this object owns: the job families per task,
    // HTTP responses per status code, and whether the previous run crashed.
    void render(std::string &out) const;

private:
    mutable std::shared_mutex mu_;
    std::map<std::string, std::unique_ptr<TaskCounters>, std::less<>> tasks_;
    std::array<std::atomic<uint64_t>, 600> responses_{};  // by status code
    std::atomic<bool> previous_run_crashed_{false};
};

// Text format helpers: "# HELP"/"# TYPE" once per family, then its samples.
void family(std::string &out, std::string_view name, std::string_view type, std::string_view help);
void sample(std::string &out, std::string_view name, std::string_view labels, double value);
// `text` as a label value may hold it (backslash, quote and newline escaped).
std::string label_value(std::string_view text);
// A family of one unlabelled sample.
void single(std::string &out, std::string_view name, std::string_view type, std::string_view help, double value);

// process_* families from /proc/self, as Prometheus client libraries name them.
void render_process(std::string &out);

}  // namespace taskhost::metrics
