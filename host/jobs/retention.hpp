// Retention: finished jobs older than --retain-finished, and those beyond
// the newest --retain-max-jobs, are deleted with their result artifacts by
// a background thread, in small batches through the store's writer (each
// one short transaction, so submits queue behind a batch, never behind a
// whole purge). An operator's DELETE /api/v1/jobs?finished_before=... runs
// the same batches at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "model/job.hpp"
#include "store/store.hpp"
#include "util/result.hpp"

namespace taskhost::jobs {

struct RetentionOptions {
    double finished_s = 7 * 86400.0;  // 0: kept however old
    size_t max_jobs = 0;              // finished jobs kept at most; 0: no limit
    size_t batch = 200;               // jobs per transaction
    double interval_s = 0;            // between background passes; 0: see Retention::interval_s()
    // A job with an idempotency key is kept by the background passes while
    // its key names it (--idempotency-ttl).
    double idempotency_ttl_s = 86400;
};

class Retention {
public:
    using Options = RetentionOptions;
    // `forget`: told the ids of each batch deleted (the job manager drops
    // its copies of them).
    Retention(store::Store &store, Options options, std::function<void(const std::vector<std::string> &)> forget);
    ~Retention() { stop(); }
    Retention(const Retention &) = delete;
    Retention &operator=(const Retention &) = delete;

    // The background thread: a pass at start, then every interval() (sooner
    // while a pass finds more than a batch). Nothing when both limits are off.
    void start();
    void stop();

    struct Deleted {
        size_t jobs = 0, artifacts = 0;
    };
    // Deletes every finished job (of `status`, one of the finished ones, if
    // given) that finished before `finished_before` (µs), now, batch by
    // batch. unavailable when the store fails (what was deleted stays so).
    // `keep_keyed_since`: as Store::prune_jobs (INT64_MAX: keys keep none).
    // A stop on `stop` ends it after the batch under way.
    Result<Deleted> delete_finished(int64_t finished_before, std::optional<model::JobStatus> status,
                                    int64_t keep_keyed_since = INT64_MAX, std::stop_token stop = {});

    struct Stats {
        uint64_t jobs = 0, artifacts = 0;  // deleted since start, by either way
        uint64_t passes = 0;               // background passes done
        std::string last_error;            // of the last pass that failed ("" after one that did not)
    };
    Stats stats() const;
    const Options &options() const { return options_; }
    // How long the thread sleeps between passes: as set, or a tenth of the
    // age limit, from 1 s to 60 s (10 s with only a count limit).
    double interval_s() const;

private:
    void loop(std::stop_token stop);
    // One background pass: the cutoff of either limit, whichever is later.
    void pass(std::stop_token stop);

    store::Store &store_;
    const Options options_;
    const std::function<void(const std::vector<std::string> &)> forget_;
    mutable std::mutex mu_;  // guards stats_
    Stats stats_;
    std::mutex wake_mu_;
    std::condition_variable_any wake_;
    std::jthread thread_;
};

}  // namespace taskhost::jobs
