// The store: where jobs and artifacts are kept. One interface; sqlite/ is the
// embedded implementation (the default), postgres/ the one a fleet of hosts
// shares.
//
// Writes a caller waits for are durable (committed) when they return;
// the others (a job's running mark, progress, its end) are queued in order
// behind earlier writes and committed in groups. Failures are thrown as
// StoreError: they arise deep inside a batch, and the store's callers turn
// them into a Result where they answer someone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/artifact.hpp"
#include "model/job.hpp"
#include "model/plugin_faults.hpp"
#include "model/schedule.hpp"
#include "util/result.hpp"

namespace taskhost::store {

// An Error, thrown. Kinds: invalid (a constraint the caller broke, such as
// a missing parent), not_found, internal (anything else).
struct StoreError : std::runtime_error {
    using Kind = ErrorKind;
    Kind kind;
    StoreError(Kind k, const std::string &what) : std::runtime_error(what), kind(k) {}
    Error error() const { return Error{kind, what()}; }
};

// A connection lent to task code (the Database / Session services).
class TaskConnection {
public:
    virtual ~TaskConnection() = default;
    // Runs one statement with positional binds (params_json: JSON array or
    // empty). Returns rows as a JSON array of objects. Throws StoreError
    // (invalid) with the database's message on failure.
    virtual std::string query(const std::string &sql, const std::string &params_json) = 0;
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() = 0;
    virtual bool in_transaction() const = 0;
};

class Store {
public:
    // `limit` for list_jobs / list_artifacts meaning "no limit" (0 means 0).
    static constexpr size_t no_limit = static_cast<size_t>(-1);

    // The end of a job: its terminal state and result artifact, stored in one
    // transaction.
    struct JobEnd {
        model::JobStatus status = model::JobStatus::completed;
        int64_t started_at = 0;  // stored unless start_job already did (0: never ran)
        int64_t finished_at = 0;
        std::optional<std::string> error, traceback;
        std::optional<model::Artifact> result_artifact;
        std::string ran_version;  // the plugin version that ran it (empty: it never ran)
        // A job that was never stored (one-request execution): this record is
        // inserted first, in the same transaction.
        std::optional<model::Job> insert_first;
        // Not an end: the attempt failed and the job waits, `scheduled`,
        // for its next one at this time (µs), with this attempt log (the
        // JSON array, the failed attempt appended). status, the artifact
        // and the error are then ignored.
        int64_t retry_at = 0;
        std::string attempt_log;
    };

    // Counters since start: transactions committed and the writes they
    // carried; WAL checkpoints by a background connection and by the writer
    // itself.
    struct WriteStats {
        uint64_t commits = 0, writes = 0;
        uint64_t checkpoints = 0, writer_checkpoints = 0;
    };

    virtual ~Store() = default;

    // Where the data is, for people ("sqlite:///abs/path", "sqlite://:memory:").
    virtual const std::string &url() const = 0;
    // What an acknowledged write survives (--sync): "full" (power loss),
    // "normal" (a crash of the host), "none" (a memory database).
    virtual const char *sync() const = 0;
    // Whether the store can read and, if the last commit failed, write
    // again; the reason when not. Never waits for a write.
    virtual Result<void> check() const = 0;

    // ---- jobs: writes ----------------------------------------------------
    // Durable when it returns.
    virtual void insert_job(const model::Job &job) = 0;
    // Durable when it returns: a job with an idempotency key, which no two
    // jobs submitted from `reusable_before` on share (an older job's key is
    // taken from it). False, and nothing stored, if such a job holds it
    // already. `for_any_host`: as offer_job.
    virtual bool insert_keyed_job(const model::Job &job, int64_t reusable_before, bool for_any_host = false) = 0;
    // Durable when it returns: a `pending` job becomes `running` and counts
    // one more attempt. False if it is not pending (canceled or deleted
    // before it started): then it must not run.
    virtual bool start_job(const std::string &id, int64_t started_at) = 0;
    virtual void update_progress(const std::string &id, double fraction, const std::string &message) = 0;
    // Queued: a `scheduled` job whose time has come is `pending` now.
    virtual void job_due(const std::string &id) = 0;
    // Queued, not waited for. `on_durable` runs after the commit, on the
    // store's writer (keep it short; it may read the store, but a blocking
    // write from it throws instead of deadlocking). If the result artifact
    // cannot be stored (e.g. its parent is gone) the job is stored `failed`
    // with the reason and on_durable still runs; if the whole transaction
    // fails, `on_failed` runs instead, with the reason.
    virtual void finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable = {},
                            std::function<void(const std::string &)> on_failed = {}) = 0;
    // Durable when it returns. False if no such job.
    virtual bool delete_job(const std::string &id) = 0;
    // Retention: deletes up to `limit` finished jobs (completed, failed,
    // canceled; only `status` when given, which must be one of those) that
    // finished before `finished_before` (µs), oldest first, with their
    // result artifacts, in one short transaction. Durable when it returns.
    // Jobs with an idempotency key submitted at or after `keep_keyed_since`
    // are kept (their key still names them). On a fleet's store, rows
    // another host is deleting are skipped.
    struct Pruned {
        std::vector<std::string> jobs;  // the ids deleted
        size_t artifacts = 0;
    };
    virtual Pruned prune_jobs(int64_t finished_before, std::optional<model::JobStatus> status, size_t limit,
                              int64_t keep_keyed_since) = 0;
    // When the n-th most recently finished job (1: the newest) finished
    // (µs; 0 when there are fewer): those that finished before it are
    // beyond the newest n.
    virtual int64_t finished_at_of_newest(size_t n) const = 0;
    // Returns once every write queued before it is committed and its
    // on_durable callback has returned (or it failed). On PostgreSQL, job
    // ends that failed because the server is away are kept (bounded) and
    // written when it is back: flush() does not wait for those;
    // flush_final() (at shutdown) tries them once more and, failing, gives
    // them up (on_failed runs).
    virtual void flush() = 0;
    virtual void flush_final() { flush(); }
    // Writes queued and not yet taken by the writer (metrics, tests).
    virtual size_t pending_writes() const = 0;
    virtual WriteStats write_stats() const = 0;

    // ---- jobs: reads -----------------------------------------------------
    virtual std::optional<model::Job> get_job(const std::string &id) const = 0;
    // The job holding idempotency key `key`, if it was submitted at or after
    // `submitted_from`.
    virtual std::optional<model::Job> find_keyed_job(const std::string &key, int64_t submitted_from) const = 0;
    // Newest first (submission order reversed).
    virtual std::vector<model::Job> list_jobs(std::optional<model::JobStatus> status, size_t limit,
                                              size_t offset) const = 0;
    virtual size_t count_jobs(std::optional<model::JobStatus> status) const = 0;

    // Start-up recovery: every `running` job becomes `failed` with `error`,
    // and the `pending` ones are returned oldest first to be run again. (In a
    // fleet: the running jobs of this host's last run and of lost hosts;
    // the pending ones this host queued. Lost hosts' are for claim_pending.)
    virtual std::vector<model::Job> recover(const std::string &running_error, int64_t now) = 0;
    // Durable when it returns: each job (id, error) that has not ended
    // becomes `failed` with its own error (those a crash is charged to).
    virtual void fail_jobs(const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) = 0;

    // ---- plugin faults (durable when they return) -------------------------
    // Counts one fault of kind `kind` for the plugin version `plugin.hash`
    // (its file, name, version and, when given, tasks are kept from
    // `plugin`) and quarantines it once a count reaches its threshold.
    // Returns its record as it is now.
    virtual model::PluginFaults record_plugin_fault(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                                    const std::string &reason,
                                                    const model::QuarantineThresholds &thresholds, int64_t now) = 0;
    virtual std::vector<model::PluginFaults> quarantined_plugins() const = 0;

    // ---- artifacts (durable when they return) ------------------------------
    // Create, or upsert when input.id names an existing artifact. level =
    // parent.level + 1, or 0 without a parent. Throws StoreError(invalid):
    // data missing, parent does not exist, parent would make a cycle.
    virtual model::Artifact save_artifact(const model::ArtifactInput &input) = 0;
    // Applies the fields that are set; recomputes level and cascades it to
    // every descendant when parent or level changed. nullopt if absent.
    virtual std::optional<model::Artifact> update_artifact(const std::string &id,
                                                           const model::ArtifactInput &input) = 0;
    // Children keep their level and lose their parent_id. False if absent.
    virtual bool delete_artifact(const std::string &id) = 0;

    virtual std::optional<model::Artifact> get_artifact(const std::string &id) const = 0;
    // Insertion order.
    virtual std::vector<model::Artifact> list_artifacts(size_t limit, size_t offset) const = 0;
    virtual size_t count_artifacts() const = 0;
    // The artifact and all its descendants: root first, then in insertion
    // order. Empty if the root does not exist.
    virtual std::vector<model::Artifact> artifact_subtree(const std::string &root_id) const = 0;

    // ---- recurring schedules (writes are durable when they return) ---------
    // False, and nothing stored, if its id is taken or (from_plugin) its
    // task has a plugin's schedule already.
    virtual bool insert_schedule(const model::Schedule &schedule) = 0;
    // Sets what people and plugins edit (task, params, cron, time zone,
    // enabled, updated_at; next_run_at only with `set_next_run`, so that an
    // edit does not put back a run another host moved on from); what its
    // runs recorded stays. False if there is no such schedule.
    virtual bool update_schedule(const model::Schedule &schedule, bool set_next_run) = 0;
    virtual bool delete_schedule(const std::string &id) = 0;
    // Records a run (runs counts one more when it made a job). With `fired`
    // (µs): only if that is still its next_run_at, which becomes
    // `next_run_at`; false, nothing written, if another host or an edit
    // came first. Without: a run out of turn ($trigger), next_run_at as it
    // is. False if there is no such schedule.
    virtual bool record_schedule_run(const std::string &id, const model::ScheduleRun &run, std::optional<int64_t> fired,
                                     int64_t next_run_at) = 0;
    virtual std::optional<model::Schedule> get_schedule(const std::string &id) const = 0;
    // Oldest first.
    virtual std::vector<model::Schedule> list_schedules() const = 0;

    // ---- a fleet (hosts sharing one database) ------------------------------
    // What the hosts table shows of a host.
    struct HostRecord {
        std::string id, address, version;
        std::string plugins_json = "[]";  // [{"name", "version", "tasks": [...]}]
        std::string tasks_json = "[]";    // the TaskInfo of each task it has loaded
        int64_t started_at = 0, heartbeat_at = 0;  // µs since the epoch
    };
    // What this host says of itself from now on (its address once bound,
    // its plugins and tasks after each reload).
    virtual void describe_host(const std::string &address, const std::string &version, const std::string &plugins_json,
                               const std::string &tasks_json) = 0;
    // The live hosts (heard of within one lease), this one included; a
    // store of one host lists just it.
    virtual std::vector<HostRecord> hosts() const = 0;
    // This host's id in hosts().
    virtual std::string describing_host() const = 0;

    // Whether other hosts share this store (PostgreSQL): a job this host
    // does not hold may be queued or run by another, and the calls below
    // act on them. False for a store of one host, where they do nothing.
    virtual bool shared() const { return false; }
    // What other hosts tell this one (LISTEN/NOTIFY on PostgreSQL). Hints
    // only: a notice can be lost while the connection is down, so whoever
    // acts on them also polls, at a bounded interval.
    struct FleetEvents {
        std::function<void(const std::string &job_id)> job_changed;   // a job's row changed
        std::function<void(const std::string &job_id)> cancel_asked;  // cancel it, if it is here
        std::function<void()> work_available;                         // unclaimed jobs may wait
    };
    // Delivers events from now on, on a thread of the store's; empty
    // callbacks stop them (no callback runs once this returns).
    virtual void listen(FleetEvents) {}
    // A task this host can run, with the major version of its plugin.
    struct Runnable {
        std::string task, major;
    };
    // Pending jobs that no live host holds (submitted for any host, or
    // queued by a host that was lost) of these tasks, accepted for the same
    // major version of their plugin (or before versions were recorded),
    // oldest first, at most `limit`: durably this host's to run when it
    // returns.
    virtual std::vector<model::Job> claim_pending(const std::vector<Runnable> & /*runnable*/, size_t /*limit*/) {
        return {};
    }
    // Durable when it returns: a pending job no host holds, for the hosts
    // that have its task (and its plugin's major version) to claim; they
    // are told that there is work. For a task this host does not have.
    virtual void offer_job(const model::Job & /*job*/) {
        throw StoreError(StoreError::Kind::internal, "a store of one host has no other host to run a job");
    }
    // The pending jobs this host holds (queued by it), oldest first.
    virtual std::vector<model::Job> held_pending() const { return {}; }
    // Pending jobs this host holds but must not run (their plugin's major
    // version is not the one loaded here): left to the hosts that can.
    virtual void release_pending(const std::vector<std::string> & /*ids*/) {}
    // Durable when it returns: a job no host has started yet becomes
    // `canceled`, and the host holding it is told. False if it is not
    // pending.
    virtual bool cancel_pending(const std::string & /*id*/, int64_t /*now*/) { return false; }
    // Tells whichever host runs the job to cancel it.
    virtual void ask_cancel(const std::string & /*id*/) {}

    // ---- task code -----------------------------------------------------
    // A connection of its own for the Database and Session services.
    virtual std::unique_ptr<TaskConnection> task_connection() = 0;
};

}  // namespace taskhost::store
