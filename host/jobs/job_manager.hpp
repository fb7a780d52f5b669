// The job protocol: accept a job (durable before anyone is told of it),
// have an executor run it, finish it (result artifact and terminal state
// committed together), cancel, time out, and wait for a job to change.
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
#include <map>
#include <set>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "exec/crash_record.hpp"
#include "exec/executor.hpp"
#include "jobs/deadlines.hpp"
#include "jobs/drain_rate.hpp"
#include "jobs/fleet_tasks.hpp"
#include "jobs/idempotency.hpp"
#include "jobs/recurring.hpp"
#include "jobs/remote_watch.hpp"
#include "jobs/retention.hpp"
#include "jobs/task_stats.hpp"
#include "metrics/metrics.hpp"
#include "model/job.hpp"
#include "registry/registry.hpp"
#include "store/store.hpp"
#include "util/result.hpp"

namespace taskhost::jobs {

struct ActiveJob;

// A consistent copy of a job's state.
struct JobView {
    model::Job record;
    bool cancel_requested = false;
    uint64_t version = 0;       // bumps on every change of a job in flight (0 when read from the store)
    std::string artifact_json;  // its result artifact, when known here (saves a read)
};

// How a submitter asks a job to run.
struct JobOptions {
    double timeout_s = 0;         // 0: its task's default
    std::optional<int> priority;  // model::kMinPriority..kMaxPriority; nullopt: its task's default
    // When to run it, µs since the epoch: until then it is `scheduled`
    // (0, or a time past: now).
    int64_t run_at = 0;
    // An Idempotency-Key (empty: none), and what the request asked, hashed
    // (the same request hashes the same).
    std::string idempotency_key, request_hash;
    // Whether the key frees itself after --idempotency-ttl (a schedule
    // run's key names its job for good: the run is made once, ever).
    bool key_expires = true;
    // A submit's "retry" object (model::apply_retry_json accepted it): its
    // members replace those of its task's retry policy. Empty: none.
    std::string retry_json;
    // The recurring schedule whose run this is (empty: none).
    std::string schedule_id;
};

struct JobManagerOptions {
    // How long a job past its timeout, or canceled while it runs, may take
    // to stop before it is given up on (--stop-grace-s).
    double stop_grace_s = 5;
    // How long an idempotency key names its job (--idempotency-ttl).
    double idempotency_ttl_s = 86400;
    // What finished jobs are kept (--retain-finished, --retain-max-jobs).
    RetentionOptions retention;
    // Recurring schedules fire on this host (false: only the API edits
    // them; tests of other things, and tools, leave them off).
    bool schedules = true;
    RecurringOptions recurring;
    // Told when a job's code did not stop within the grace, with its task
    // and why: app charges the plugin version with a hang.
    std::function<void(const registry::Task &task, const std::string &why)> on_stuck;
};

class JobManager {
public:
    using Options = JobManagerOptions;

    JobManager(store::Store &store, registry::Registry &registry, exec::Executor &executor, metrics::Metrics &metrics,
               Options options = {});
    ~JobManager();  // stop(), with no deadline

    // No job starts from now on (a queued one stays pending in the store and
    // runs after a restart); running ones are asked to stop, and those that
    // have not by `deadline` are given up on and recorded as interrupted;
    // the executor's workers are stopped and every end is committed.
    // Idempotent.
    void stop(std::chrono::steady_clock::time_point deadline);

    // Fails the jobs a crash record names, with its cause; marks the other
    // jobs left running as failed; queues the pending ones on the
    // registry's tasks. Call once, after plugins are loaded and before
    // start(). Returns how many were queued.
    size_t recover(const std::optional<exec::Crash> &crash = std::nullopt);
    // On a shared store (a fleet), also listens to the other hosts and
    // claims the jobs no live host holds whenever it has room.
    void start();

    // ---- the job protocol ---------------------------------------------------

    struct Executed {
        std::string job_id;
        // Set when the job ended within the wait: the answer is the job with
        // its result artifact (artifact_json, or empty if it has none).
        std::optional<JobView> finished;
        // The submit carried an idempotency key that already named this job
        // (made by an earlier submit with the same request): nothing new.
        bool replayed = false;
    };
    // Runs `task` with `params_json` (the caller's params as compact JSON
    // text, "{}" when none) as a job; with `wait_s`, waits up to that long
    // for it to end. When this returns, the job is durable or finished.
    //
    // Nothing is acknowledged before the caller answers, so a job may be
    // stored later, together with its end, in one write: with a wait, or
    // when it runs on the calling thread (its task is known to be quick, a
    // worker slot is free and nothing is queued ahead: see TaskStats), the
    // job is stored with its end, or just before this returns if it has not
    // ended. Otherwise it is stored before it is queued.
    //
    // Errors, each with the detail to show: invalid (params the task
    // refuses), overloaded (the queue is full), unavailable (it could not be
    // stored; the host is stopping).
    // A stop on `abandon` ends the wait early (the job goes on).
    // With an idempotency key, the key's job if it has one (`replayed`;
    // conflict if it was made for another request); else the job is made
    // and stored with the key before this returns (never run here first).
    // A job with a run_at later than now is stored `scheduled`, held here
    // (at most as many as the queue may hold: overloaded beyond) and queued
    // when its time comes, on the task then loaded.
    Result<Executed> execute(std::shared_ptr<const registry::Task> task, std::string params_json,
                             const JobOptions &options, std::optional<double> wait_s, std::stop_token abandon = {});

    // A fleet: a job for a task not loaded here that another live host has
    // (FleetTasks). Its params are checked against the task's schema (a
    // task that checks them in its own code does so where it runs: an
    // invalid job then fails there); it is stored for any host that has the
    // task's plugin at the same major version to claim, and waited for
    // wherever it runs. Errors: not_found (no live host has it), invalid,
    // unavailable.
    Result<Executed> execute_elsewhere(std::string_view task, std::string params_json, const JobOptions &options,
                                       std::optional<double> wait_s, std::stop_token abandon = {});
    // The tasks the fleet's live hosts have loaded (this one's included);
    // null on a store of one host. Throws when it cannot be read.
    std::shared_ptr<const FleetTasks::Catalogue> fleet_tasks() const;
    // One task of it; null if no live host has it (or on a store of one host).
    std::shared_ptr<const FleetTasks::Catalogue> fleet_task(std::string_view name, const FleetTasks::Task *&task) const;
    // The same, with a read failure as an Error (unavailable), and null for
    // a task only this host's (stale) row names.
    Result<void> read_fleet_task(std::string_view name, const FleetTasks::Task *&task,
                                 std::shared_ptr<const FleetTasks::Catalogue> &catalogue) const;

    // A job another host of a fleet holds is read from the store: its
    // version is then derived from its row, so that it changes when the
    // row does.
    std::optional<JobView> get(const std::string &id) const;
    // Newest first. Writes queued before the call are committed first, so
    // the list agrees with get().
    std::vector<JobView> list(std::optional<model::JobStatus> status, size_t limit, size_t offset);
    size_t count(std::optional<model::JobStatus> status) const;

    // Waits until the job is terminal (or gone) or the deadline passes, and
    // returns its latest state (nullopt if it does not exist).
    // A stop on `abandon` (the caller's client hung up) ends the wait too.
    std::optional<JobView> wait_terminal(const std::string &id, std::chrono::steady_clock::time_point deadline,
                                         std::stop_token abandon = {}) const;
    // Waits until the job's version differs from `seen` or the deadline passes.
    std::optional<JobView> wait_change(const std::string &id, uint64_t seen,
                                       std::chrono::steady_clock::time_point deadline,
                                       std::stop_token abandon = {}) const;
    // Shutdown: every wait, now and later, returns the job's state at once
    // instead of at its deadline, so long-polls and job streams do not hold
    // the HTTP server's shutdown back.
    void release_waiters();

    struct Canceled {
        bool done = false;  // canceled now (it was pending); otherwise asked to stop
        JobView job;        // as it is now (when done: the committed record)
    };
    // Pending: canceled at once. Running: asks the task to stop (cooperative),
    // on whichever host of a fleet runs it.
    // not_found; conflict if it has already finished; unavailable.
    Result<Canceled> cancel(const std::string &id);
    // Cancels the job if still active, then deletes its record. not_found.
    Result<void> remove(const std::string &id);

    // Finished jobs deleted by age and count, in the background, and at an
    // operator's request.
    Retention &retention() { return retention_; }
    const Retention &retention() const { return retention_; }
    // Recurring schedules: their API, and the thread that fires them.
    RecurringJobs &recurring() { return recurring_; }
    const RecurringJobs &recurring() const { return recurring_; }
    // Whether `params_json` (a JSON object's text) would be accepted for
    // the task `task`, loaded here or (a fleet) on another live host.
    // not_found, invalid, unavailable.
    Result<void> check_task_params(std::string_view task, std::string_view params_json) const;

    // ---- figures ----------------------------------------------------------
    struct Load {
        size_t workers = 0;         // jobs that may run at once
        size_t running = 0;         // jobs running now
        size_t queued = 0;          // jobs waiting for a worker
        size_t queue_capacity = 0;  // most that may wait
        size_t waiting = 0;         // callers waiting on a job now (long-polls, job streams)
        size_t stuck = 0;           // workers given up on, their code still running
        size_t scheduled = 0;       // jobs held here until their run_at
    };
    Load load() const;
    // The worker processes that run tasks (a JSON array; empty in process).
    std::string workers_json() const { return executor_.workers_json(); }
    exec::Executor::WorkerStats worker_stats() const { return executor_.worker_stats(); }
    // When a caller refused for a full queue should retry (Retry-After):
    // the jobs queued now over the rate jobs ended lately (DrainRate).
    int retry_after_s() const;

private:
    friend struct ActiveJob;
    friend class TaskCall;

    // A job submit() accepted: queued already, or (`here`) left to its
    // submitter to run now, in the worker slot the admission holds.
    struct Submission {
        std::shared_ptr<ActiveJob> job;
        exec::Admission here;
        bool deferred = false;  // its storing was left to its end, or to the submitter's persist()
    };
    // A submit with an idempotency key (options.idempotency_key): `make`
    // stores the job with the key (and does not wait for it), unless the
    // key names a job already; then the wait is this one's.
    Result<Executed> execute_new(std::shared_ptr<const registry::Task> task, std::string params_json,
                                 const JobOptions &options, std::optional<double> wait_s, std::stop_token abandon);
    Result<Executed> offer_new(std::string_view task, std::string params_json, const JobOptions &options,
                               std::optional<double> wait_s, std::stop_token abandon);
    Result<Executed> keyed(const JobOptions &options, std::optional<double> wait_s, std::stop_token abandon,
                           const std::function<Result<Executed>()> &make);
    int64_t keys_valid_from(int64_t now) const;
    Result<Submission> submit(std::shared_ptr<const registry::Task> task, std::string params_json,
                              const JobOptions &options, std::optional<double> wait_s, bool may_run_here);
    // A scheduled job's time has come (Deadlines::Kind::due): it is queued
    // on its task as loaded now, or failed if that is gone.
    void make_due(const std::shared_ptr<ActiveJob> &job);
    // Holds a scheduled job here until its run_at.
    void hold_until_due(const std::shared_ptr<ActiveJob> &job);
    // The job no longer counts as scheduled (once; caller holds job.mu).
    void count_out_scheduled_locked(ActiveJob &job);
    // The Scheduler service: a job submitted by a task, always queued.
    // params_json: a JSON object, or empty for none.
    Result<std::string> schedule(std::string_view task, std::string_view params_json);
    // Makes a job whose storing was deferred durable: stores it now, or, if
    // its end is already on its way to the store, waits for that. A job that
    // cannot be stored is canceled and forgotten.
    Result<JobView> persist(const std::shared_ptr<ActiveJob> &job);
    // `requester`: the wait of the request the end comes from (its submit,
    // its cancel), which an end that failed to commit ends however early it
    // failed (other waiters that come after such an end wait as usual).
    std::optional<JobView> wait_terminal(const std::shared_ptr<ActiveJob> &job,
                                         std::chrono::steady_clock::time_point deadline, std::stop_token abandon,
                                         bool requester) const;
    std::optional<JobView> wait_change(const std::shared_ptr<ActiveJob> &job, uint64_t seen,
                                       std::chrono::steady_clock::time_point deadline, std::stop_token abandon) const;
    // A job no caller here holds, that another host of a fleet may: waits
    // until its row is terminal (or, with `seen`, its version differs), the
    // deadline passes, or it turns out to be here after all (then returned
    // as `local`, for the caller to wait on as usual).
    struct Elsewhere {
        std::optional<JobView> view;
        std::shared_ptr<ActiveJob> local;
    };
    Elsewhere wait_elsewhere(const std::string &id, std::optional<uint64_t> seen,
                             std::chrono::steady_clock::time_point deadline, std::stop_token abandon) const;
    Result<Canceled> cancel_elsewhere(model::Job record);
    // Another host asked that a job be canceled (or deleted it, or canceled
    // it while it was pending here).
    void on_cancel_asked(const std::string &id);
    // A job here whose row another host changed before its code ran: it
    // takes what the row says (nullopt: deleted) and leaves.
    void adopt(const std::shared_ptr<ActiveJob> &job, std::optional<model::Job> stored);
    // A stored pending job, made active and queued on its task (or failed
    // if this host has no such task).
    void queue_stored(model::Job record, const registry::Snapshot &snapshot);
    // A fleet: the tasks the other live hosts have loaded, each with the
    // major versions of its plugin (empty on a store of one host).
    std::map<std::string, std::set<std::string>> tasks_of_other_hosts() const;
    // The claimer thread (a fleet): claims jobs no live host holds when
    // there is room, on notice or every kClaimPoll. Returns whether there
    // may be more to claim.
    void claim_loop(std::stop_token stop);
    bool claim(bool more);
    void wake_claimer();
    // Queues the pending jobs the store says this host holds and it does
    // not have (after the database was away).
    void take_back_held();
    // A fleet's database is away when a job is to start: it goes back to
    // pending, out of the queue, and the claimer queues it again once the
    // store answers. False if it was acted on meanwhile (it then ends).
    bool defer_start(const std::shared_ptr<ActiveJob> &job);
    // A start refused (`why`) after an earlier one whose commit seemed to
    // fail: true if that one was committed after all (the row is running,
    // with its start time), and the job is to run as started then.
    bool start_was_ours(ActiveJob &job, const Error &why);
    void retry_unstarted();
    std::shared_ptr<ActiveJob> active(const std::string &id) const;
    void add_active(const std::shared_ptr<ActiveJob> &job);

    // On the executor: calls the task, then finishes the job.
    void run(const std::shared_ptr<ActiveJob> &job);
    // Moves a pending job to running and returns its task, held for the
    // run; null if it must not run (ended, canceled, deleted, or the host
    // stopping).
    std::shared_ptr<const registry::Task> start_running(ActiveJob &job);
    // Commits the start of a stored job before its code runs (a deferred
    // job is stored already started, if at all); why not when it cannot.
    Result<void> record_start(ActiveJob &job);
    // `attempt`: the job's start count when the deadline was set; a
    // timeout or grace of an earlier attempt does nothing.
    void on_deadline(const std::shared_ptr<ActiveJob> &job, Deadlines::Kind kind, int attempt);
    // A running job whose code did not stop when it had to: its worker is
    // written off, the job ends now (`status`, `why`), its plugin is told of.
    // `charge`: report it through Options::on_stuck (a hang of its plugin).
    // Why, for each way the executor can give up: its worker process
    // killed, or its thread abandoned.
    struct GiveUpReason {
        std::string abandoned, killed;
    };
    // `attempt`: only that attempt (-1: whichever runs).
    void give_up(const std::shared_ptr<ActiveJob> &job, model::JobStatus status, const GiveUpReason &reason,
                 bool charge = true, int attempt = -1);
    // The job no longer counts as running (once, whoever gets there first).
    void count_out(ActiveJob &job);
    // A job whose params its task refused when it was to run (checked in
    // that call): it is forgotten as if it had never been made. False if it
    // was acted on meanwhile (canceled, deleted, given up on): then it stays.
    bool undo_refused(const std::shared_ptr<ActiveJob> &job, const std::string &why);
    // Hands a job's end to the store; it becomes visible once committed.
    void finish(const std::shared_ptr<ActiveJob> &job, model::JobStatus status, std::optional<std::string> error,
                std::optional<std::string> traceback, std::optional<model::Artifact> artifact);
    // Whether a failed attempt (`out`, ended for `reason`) runs again: its
    // retry policy has attempts left and nothing makes the failure final.
    bool may_retry(const ActiveJob &job, const model::TaskOutcome &out, int reason) const;
    // A failed attempt that runs again: once the store has it, the job is
    // `scheduled` for its next attempt (or canceled, if a cancel came
    // meanwhile). Not an end: nobody waiting for one is woken.
    void retry_later(const std::shared_ptr<ActiveJob> &job, const std::string &error);
    void retry_committed(const std::shared_ptr<ActiveJob> &job, int64_t run_at, std::string attempt_log);
    void count_end(ActiveJob &job, model::JobStatus status, int64_t finished_at, int64_t started_at);
    // The store committed the end, or could not.
    void end_committed(ActiveJob &job, model::Job ended, std::string artifact_json);
    void end_failed(ActiveJob &job, const std::string &why, bool never_stored);
    // Marks a job deleted and asks it to stop; a job that will now never run
    // releases its plugin generation. Caller holds job.mu and notifies after.
    // `how`: what the metrics count it as, if it had not ended yet.
    void drop_locked(ActiveJob &job, metrics::Metrics::End how);
    void forget(const std::string &id);
    // Retention deleted these finished jobs' rows: copies kept here go too.
    void forget_deleted(const std::vector<std::string> &ids);
    // A job just durably ended stays in the active map for a while: the
    // client usually reads it (and its artifact) right away, and its
    // complete record saves a database read. Bounded by count and bytes.
    void retire(const std::string &id, size_t bytes);
    static constexpr size_t kKeepEndedJobs = 1024;
    static constexpr size_t kMaxUnconfirmedStarts = 64;
    static constexpr size_t kKeepEndedBytes = 8u << 20;

    store::Store &store_;
    registry::Registry &registry_;
    exec::Executor &executor_;
    const Options options_;
    const std::string fleet_host_;  // this host's id in a fleet; empty on a store of one host
    TaskStatsBook task_stats_;
    DrainRate drain_;  // every job end, for retry_after_s()
    Deadlines timeouts_;

    mutable std::mutex active_mu_;  // guards active_, ended_, ended_bytes_
    std::unordered_map<std::string, std::shared_ptr<ActiveJob>> active_;
    std::deque<std::pair<std::string, size_t>> ended_;  // retired ids, oldest first
    size_t ended_bytes_ = 0;

    mutable RemoteWatch remote_;  // jobs of other hosts that callers here wait on
    FleetTasks fleet_tasks_;
    IdempotencyKeys keys_;
    Retention retention_;
    RecurringJobs recurring_;  // after everything it uses; stopped first
    std::mutex claim_mu_;
    std::condition_variable_any claim_cv_;
    bool claim_now_ = false;                             // guarded by claim_mu_
    std::vector<std::shared_ptr<ActiveJob>> unstarted_;  // waiting for the database (claim_mu_)
    std::vector<std::string> cancels_asked_;             // by other hosts, for the claimer (claim_mu_)
    std::atomic<bool> claim_more_{false};  // the last claim filled its batch: look again when there is room
    std::jthread claimer_;

    std::atomic<bool> stopping_{false};
    std::atomic<bool> stopped_{false};
    std::atomic<size_t> running_{0};
    std::atomic<size_t> scheduled_{0};  // held until their run_at
    std::atomic<bool> waiters_released_{false};
    mutable std::atomic<size_t> waiting_{0};
};

}  // namespace taskhost::jobs
