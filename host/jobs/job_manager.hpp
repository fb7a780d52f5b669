// Job lifecycle: accept (durable before the 202), queue (bounded), run on a
// fixed worker pool, finish (result artifact + terminal state committed
// together), cancel, time out, and wait for a job to change.
//
// Every job that is not yet durably terminal lives in the active map; its
// in-memory record there is the truth. So do the last jobs to end (a bounded
// number, identical to their rows). Everything else is read from the store.
// A terminal state becomes visible only once it is committed together with
// the result artifact, so a client that sees "completed" can always fetch
// the artifact it names.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "metrics/metrics.hpp"
#include "jobs/task_stats.hpp"
#include "registry/registry.hpp"
#include "store/store.hpp"

namespace taskhost::jobs {

class HostServices;

enum class CancelReason : int { none = 0, user = 1, timeout = 2, deleted = 3, shutdown = 4 };

struct ActiveJob {
    std::mutex mu;
    // Two, so that a waiter for the end is not woken by every progress
    // report, and a change nobody waits for costs no system call.
    std::condition_variable changed;  // notified on every state change
    std::condition_variable ended;    // notified when durably terminal or deleted
    model::Job record;                // guarded by mu
    uint64_t version = 0;             // bumps on every change (guarded by mu)
    bool finishing = false;           // terminal state handed to the store (guarded by mu)
    bool durable_terminal = false;    // terminal state committed and visible (guarded by mu)
    std::string end_error;            // why its end could not be committed (guarded by mu)
    bool deleted = false;             // DELETE removed it (guarded by mu)
    // durable_terminal || deleted, readable without mu (set under it): a
    // waiter first yields on it for about one commit (util/yield_wait.hpp).
    std::atomic<bool> settled{false};
    // Its row is in the store or queued for it (guarded by mu). A job
    // submitted for one-request execution is stored only when it ends or
    // when its wait runs out, whichever comes first.
    bool stored = false;
    std::string artifact_json;                   // the committed result artifact, rendered (guarded by mu)
    registry::TaskLease task;  // held until its code has returned, or it will never run
    TaskStats *stats = nullptr;  // its task's, looked up once (they outlive jobs)
    bool recovered = false;                      // requeued at start: its queue wait spans the downtime
    std::atomic<int> cancel{0};                  // CancelReason
};

// A consistent copy of a job's state.
struct JobView {
    model::Job record;
    bool cancel_requested = false;
    uint64_t version = 0;
    bool deleted = false;
    std::string artifact_json;  // set when the job just finished here: saves a read
};

class JobManager {
public:
    struct Options {
        size_t workers = 4;
        size_t queue_capacity = 10000;
    };

    JobManager(store::Store &store, HostServices &services, metrics::Metrics &metrics, Options options);
    ~JobManager();  // stops the workers; running tasks are asked to cancel

    // Marks jobs left running by a crash as failed and queues the pending ones.
    // Call once, after plugins are loaded and before serving.
    size_t recover(const registry::Snapshot &snapshot);
    void start();

    enum class SubmitStatus { accepted, queue_full, invalid_params, store_error };
    struct SubmitResult {
        SubmitStatus status;
        std::string job_id;   // when accepted
        std::string message;  // otherwise
        std::shared_ptr<ActiveJob> job;
        bool run_here = false;  // not queued: the caller runs it with run_here()
    };
    // Validates params against the task, stores the job durably, queues it.
    // params_json: the caller's params as compact JSON text ("{}" when none).
    //
    // Nothing is acknowledged before the caller answers, so a job may be
    // stored later, together with its end, in one write:
    // - wait_s set (one-request execution): the job is not stored now. The
    //   caller must call persist() before it acknowledges a job that has not
    //   ended.
    // - run_here in the result: the task is known to be quick (its recent
    //   runs took under 1% of the wait and under 10 ms; without a wait, under
    //   the cost of handing the job to a worker; and no run ever took 100 ms),
    //   a worker slot is free and nothing is queued ahead. The job is not
    //   queued: the caller runs it with run_here(), then persist()s or waits
    //   for it, saving the thread hand-offs and a write. (A quick task that
    //   suddenly runs long delays that one answer; the job is unaffected.)
    // Otherwise the job is stored durably before this returns and queued.
    SubmitResult submit(std::shared_ptr<const registry::Task> task, std::string params_json, double timeout_s,
                        std::optional<double> wait_s = std::nullopt);
    // Runs a job that submit() left to the caller, on the calling thread.
    void run_here(const std::shared_ptr<ActiveJob> &job);

    // Makes a deferred job durable: stores it now (blocking), or, if its end
    // is already on its way to the store, waits for that. Returns its state
    // then; nullopt with `error` set if it could not be stored (a job stored
    // here is then canceled and forgotten).
    std::optional<JobView> persist(const std::shared_ptr<ActiveJob> &job, std::string *error);

    std::optional<JobView> get(const std::string &id) const;
    std::shared_ptr<ActiveJob> active(const std::string &id) const;

    // Waits until the job is terminal (or gone) or the deadline passes, and
    // returns its latest state (nullopt if it does not exist).
    std::optional<JobView> wait_terminal(const std::string &id, std::chrono::steady_clock::time_point deadline) const;
    // The same for a job the caller holds (it may have been forgotten since:
    // its record stays complete, and its rendered artifact saves a read).
    std::optional<JobView> wait_terminal(const std::shared_ptr<ActiveJob> &job,
                                         std::chrono::steady_clock::time_point deadline) const;
    // Waits until the job's version differs from `seen` or the deadline passes.
    std::optional<JobView> wait_change(const std::string &id, uint64_t seen,
                                       std::chrono::steady_clock::time_point deadline) const;

    // Shutdown: every wait_terminal / wait_change, now and later, returns the
    // job's state at once instead of at its deadline, so long-polls and job
    // streams do not hold the HTTP server's shutdown back. (persist() still
    // waits for the store.)
    void release_waiters();

    enum class CancelResult { not_found, already_finished, canceled, requested };
    // Pending: canceled at once. Running: asks the task to stop (cooperative).
    CancelResult cancel(const std::string &id);
    // Cancels if still active, then deletes the record. False if absent.
    bool remove(const std::string &id);

    size_t queue_depth() const;
    size_t running() const { return running_.load(); }
    // Callers inside wait_terminal / wait_change now (long-polls, job streams).
    size_t waiting() const { return waiting_.load(); }
    size_t queue_capacity() const { return options_.queue_capacity; }
    size_t workers() const { return options_.workers; }

private:
    void worker_loop();
    void release_slot();
    void timer_loop();
    void run(const std::shared_ptr<ActiveJob> &job);
    void finish(const std::shared_ptr<ActiveJob> &job, model::JobStatus status, std::optional<std::string> error,
                std::optional<std::string> traceback, std::optional<model::Artifact> artifact);
    void forget(const std::string &id);
    // Marks a job deleted and asks it to stop; a job that will now never run
    // releases its plugin generation. Caller holds job.mu and notifies after.
    // `how`: what the metrics count it as, if it had not ended yet.
    void drop_locked(ActiveJob &job, metrics::Metrics::End how);
    // A job whose end is being committed is usually settled within one
    // commit: with job.mu held (by `lock`), yields for that long before the
    // caller blocks on a condition variable.
    static void yield_while_committing(ActiveJob &job, std::unique_lock<std::mutex> &lock);
    // A job just durably ended stays in the active map for a while: the
    // client usually reads it (and its artifact) right away, and its
    // complete record saves a database read. Bounded by count and bytes.
    void retire(const std::string &id, size_t bytes);
    static constexpr size_t kKeepEndedJobs = 1024;
    static constexpr size_t kKeepEndedBytes = 8u << 20;
    void schedule_timeout(const std::shared_ptr<ActiveJob> &job, double seconds);

    store::Store &store_;
    HostServices &services_;
    metrics::Metrics &metrics_;
    TaskStatsBook task_stats_;
    Options options_;

    mutable std::mutex active_mu_;
    std::unordered_map<std::string, std::shared_ptr<ActiveJob>> active_;
    std::deque<std::pair<std::string, size_t>> ended_;  // retired ids, oldest first (active_mu_)
    size_t ended_bytes_ = 0;

    mutable std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<std::shared_ptr<ActiveJob>> queue_;
    size_t reserved_ = 0;  // slots promised to submissions still being stored
    size_t busy_ = 0;      // jobs executing, by workers or callers (at most `workers`)
    bool stopping_ = false;
    std::atomic<size_t> running_{0};
    std::atomic<bool> waiters_released_{false};
    mutable std::atomic<size_t> waiting_{0};
    std::vector<std::thread> workers_;

    struct Deadline {
        std::chrono::steady_clock::time_point at;
        std::weak_ptr<ActiveJob> job;
        bool operator>(const Deadline &o) const { return at > o.at; }
    };
    std::mutex timer_mu_;
    std::condition_variable timer_cv_;
    std::vector<Deadline> deadlines_;  // min-heap
    bool timer_stop_ = false;
    std::thread timer_;
};

}  // namespace taskhost::jobs
