// Recurring jobs: schedules that run a task whenever a cron expression
// fires (model/cron.hpp), each run an ordinary job that names its schedule.
//
// One thread per host sleeps until the earliest next run it knows of (and
// at most poll_s, so that a fleet's hosts see each other's edits), then
// fires what is due. A run is made exactly once, however many hosts fire
// it: its job carries the idempotency key "schedule:<id>:<run time>", which
// the store lets one job hold (the other hosts' submits find that job), and
// only then is the schedule moved on to its next run, by a compare-and-set
// on next_run_at. A host that stops between the two fires the same run
// again when it is back, and finds the same job.
//
// Missed runs (the host was down, or paused past them): at most one
// catch-up. A schedule whose next run is in the past fires once, now, and
// its next run is the first one after now.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "model/schedule.hpp"
#include "registry/registry.hpp"
#include "store/store.hpp"
#include "util/result.hpp"

namespace taskhost::jobs {

class JobManager;

struct RecurringOptions {
    // The longest the thread sleeps before reading the schedules again.
    double poll_s = 5;
};

class RecurringJobs {
public:
    using Options = RecurringOptions;
    RecurringJobs(store::Store &store, registry::Registry &registry, JobManager &jobs, Options options = {});
    ~RecurringJobs() { stop(); }
    RecurringJobs(const RecurringJobs &) = delete;
    RecurringJobs &operator=(const RecurringJobs &) = delete;

    void start();
    void stop();

    // What a create or an edit sets; unset members keep their value (an
    // edit) or their default (a create, where task and cron are required).
    struct Input {
        std::optional<std::string> task, params_json, cron, time_zone;
        std::optional<bool> enabled;
    };
    // Errors: invalid (a bad cron expression, zone or params), not_found
    // (no host has the task), unavailable (the store failed).
    Result<model::Schedule> create(const Input &input);
    // Also conflict: a plugin's schedule takes only enabled and params.
    Result<model::Schedule> update(const std::string &id, const Input &input);
    // conflict for a plugin's schedule (it would come back at the next
    // load: pause it instead).
    Result<void> remove(const std::string &id);
    // Runs the schedule's task now, out of turn (its next run stays).
    Result<std::string> trigger(const std::string &id);
    std::optional<model::Schedule> get(const std::string &id) const;
    std::vector<model::Schedule> list() const;

    // After each plugin load: the schedules tasks declare (the SDK's
    // .every()) are created, or their cron and zone follow the
    // declaration; a plugin's schedule whose task is loaded here without
    // one is deleted. (One whose task is not loaded here stays: another
    // host of a fleet may have it.)
    void sync_declared(const registry::Snapshot &snapshot);

    struct Stats {
        uint64_t fired = 0;      // runs that made a job (here)
        uint64_t failed = 0;     // runs that could not (their last_error says why)
        uint64_t caught_up = 0;  // runs fired late, for missed ones
    };
    Stats stats() const;

private:
    void loop(std::stop_token stop);
    // Fires every due schedule; returns when to look again (µs).
    int64_t fire_due(int64_t now);
    // One due run. False if it is to be tried again soon (the queue was
    // full, or the store away).
    bool fire(const model::Schedule &schedule, int64_t now);
    // The next run after `now` of an enabled schedule (0: none, or disabled).
    static Result<int64_t> next_run(const model::Schedule &schedule, int64_t now);
    void wake();

    store::Store &store_;
    registry::Registry &registry_;
    JobManager &jobs_;
    const Options options_;
    std::atomic<uint64_t> fired_{0}, failed_{0}, caught_up_{0};
    std::mutex wake_mu_;
    std::condition_variable_any wake_cv_;
    bool woken_ = false;  // guarded by wake_mu_
    std::jthread thread_;
};

}  // namespace taskhost::jobs
