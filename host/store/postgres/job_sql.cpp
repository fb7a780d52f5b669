#include "store/postgres/job_sql.hpp"

#include <algorithm>
#include <utility>

#include "store/postgres/artifact_sql.hpp"
#include "store/postgres/schema.hpp"

namespace taskhost::store::postgres {

using model::Job;
using model::JobStatus;

namespace {

#define JOB_COLS                                                                                              \
    "id, task_name, params, status, submitted_at, started_at, finished_at, error, error_traceback, "          \
    "artifact_id, progress, progress_message, timeout_s, attempts, plugin_version, ran_version, retry_safe, " \
    "priority, run_at, idempotency_key, request_hash, max_attempts, retry, attempt_log, schedule_id"
// What a read returns: the job's columns and the host that ran it.
#define JOB_READ_COLS JOB_COLS ", run_by"
// The same, where another table in the statement has an id too.
#define JOB_READ_COLS_OF_JOBS                                                                                 \
    "jobs.id, task_name, params, status, submitted_at, started_at, finished_at, error, error_traceback, "     \
    "artifact_id, progress, progress_message, timeout_s, attempts, plugin_version, ran_version, retry_safe, " \
    "priority, run_at, idempotency_key, request_hash, max_attempts, retry, attempt_log, schedule_id, run_by"

// A duplicate id inserts nothing instead of failing: a failed statement
// would abort the whole batch's transaction.
// A job stored already running (its wait ran out while it ran here) holds
// a lease from the start, as one started by start_job does.
constexpr Statement kInsertJob{"INSERT INTO jobs (" JOB_COLS
                               ", run_by, queued_by, lease_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                               "$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, "
                               "$27, CASE WHEN $4 = 'running' THEN " TASKHOST_PG_NOW_US
                               " + $28::bigint END) ON CONFLICT DO NOTHING"};
// A keyed job's earlier holder of its key, submitted before $2, gives it up.
constexpr Statement kFreeKey{"UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key = $1 AND submitted_at < $2"};
constexpr Statement kFindKeyedJob{"SELECT " JOB_READ_COLS
                                  " FROM jobs WHERE idempotency_key = $1 AND submitted_at >= $2"};
// Only a job waiting to run starts (a scheduled one is due by then; its row
// may not say so yet): a cancel or delete that came first must stick, and
// of two hosts that try, one does. The job then holds a lease.
constexpr Statement kStartJob{
    "UPDATE jobs SET status = 'running', started_at = $2, attempts = attempts + 1, run_by = $3, "
    "lease_until = " TASKHOST_PG_NOW_US " + $4 WHERE id = $1 AND status IN ('pending', 'scheduled')"};
constexpr Statement kJobDue{"UPDATE jobs SET status = 'pending' WHERE id = $1 AND status = 'scheduled'"};
constexpr Statement kUpdateProgress{"UPDATE jobs SET progress = $2, progress_message = $3 WHERE id = $1"};
// Only a job not ended yet (one whose lease ran out was failed by another
// host, and a late end must not undo that), and not one another host runs
// (this host lost the race to start it: its end says nothing).
constexpr Statement kFinishJob{
    "UPDATE jobs SET status = $2, finished_at = $3, error = $4, error_traceback = $5, "
    "artifact_id = coalesce($6, artifact_id), started_at = coalesce(started_at, $7), lease_until = NULL, "
    "ran_version = coalesce($9, ran_version) "
    "WHERE id = $1 AND status IN ('pending', 'running', 'scheduled') AND (run_by IS NULL OR run_by = $8)"};
// A failed attempt that runs again, on any host when due: only from
// running, and only the end of the host that ran it (as kFinishJob). It
// keeps run_by (the last attempt's host) until the next start.
constexpr Statement kRetryJob{
    "UPDATE jobs SET status = 'scheduled', run_at = $2, attempt_log = $3::jsonb, started_at = NULL, "
    "lease_until = NULL, progress = NULL, progress_message = '' "
    "WHERE id = $1 AND status = 'running' AND (run_by IS NULL OR run_by = $4)"};
constexpr char kDeleteJob[] = "DELETE FROM jobs WHERE id = $1";
// Retention, oldest first, along the index on finished jobs' finished_at;
// rows another host is deleting are skipped. A result artifact's children
// stay (ON DELETE SET NULL), as DELETE of an artifact leaves them.
#define TASKHOST_FINISHED "status IN ('completed', 'failed', 'canceled')"
#define TASKHOST_PRUNE(where)                                                                                   \
    "WITH picked AS MATERIALIZED (SELECT id, artifact_id FROM jobs WHERE " TASKHOST_FINISHED                    \
    " AND finished_at < $1 AND (idempotency_key IS NULL OR submitted_at < $3) " where                           \
    " ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED), "                                                  \
    "gone AS (DELETE FROM jobs USING picked WHERE jobs.id = picked.id RETURNING jobs.id, picked.artifact_id), " \
    "results AS (DELETE FROM artifacts WHERE id IN (SELECT artifact_id FROM gone) RETURNING id) "               \
    "SELECT id, (SELECT count(*) FROM results) FROM gone"
constexpr char kPrune[] = TASKHOST_PRUNE("");
constexpr char kPruneByStatus[] = TASKHOST_PRUNE(" AND status = $4");
#undef TASKHOST_PRUNE
constexpr char kFinishedAtOfNewest[] = "SELECT finished_at FROM jobs WHERE " TASKHOST_FINISHED
                                       " AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1 OFFSET $1";
#undef TASKHOST_FINISHED
constexpr Statement kGetJob{"SELECT " JOB_READ_COLS " FROM jobs WHERE id = $1"};
// Job ids are time-ordered ULIDs: id order is submission order.
constexpr char kListJobs[] = "SELECT " JOB_READ_COLS " FROM jobs ORDER BY id DESC LIMIT $1 OFFSET $2";
constexpr char kListJobsByStatus[] =
    "SELECT " JOB_READ_COLS " FROM jobs WHERE status = $3 ORDER BY id DESC LIMIT $1 OFFSET $2";
constexpr char kCountJobs[] = "SELECT count(*) FROM jobs";
constexpr char kCountJobsByStatus[] = "SELECT count(*) FROM jobs WHERE status = $1";
// At start-up: the jobs this host ran before it restarted (same host id),
// and those stored before hosts were recorded. Those of other hosts whose
// lease ran out are the heartbeat's (which waits until live hosts renewed
// theirs after an outage).
// Before kFailRunning: the retry-safe ones with starts left (their retry
// policy's, or $2 without one) run again, on any host that has their task,
// the lost attempt logged.
constexpr char kRequeueRunning[] =
    "WITH r AS (UPDATE jobs SET status = 'pending', started_at = NULL, lease_until = NULL, run_by = NULL, "
    "queued_by = NULL, progress = NULL, progress_message = '', attempt_log = " TASKHOST_PG_LOG_LOST("$3::bigint", "$4::text")
    " WHERE status = 'running' AND retry_safe "
    "AND attempts < " TASKHOST_PG_MAX_STARTS("$2") " AND cancel_requested_at IS NULL "
    "AND (run_by = $1 OR run_by IS NULL) "
    "RETURNING id) SELECT pg_notify('taskhost', 'w:') FROM (SELECT count(*) FROM r) AS n";
constexpr char kFailRunning[] =
    "UPDATE jobs SET status = 'failed', finished_at = $2, lease_until = NULL, error = $1 "
    "WHERE status = 'running' AND (run_by = $3 OR run_by IS NULL)";
// A pending job no live host holds: queued by none, or by a host not
// heard of within a lease ($2).
#define TASKHOST_UNHELD                                                                    \
    "(queued_by IS NULL OR NOT EXISTS (SELECT 1 FROM hosts h WHERE h.id = jobs.queued_by " \
    "AND h.heartbeat_at >= " TASKHOST_PG_NOW_US " - $2))"
// The pending jobs this host queued before it restarted. Those no host
// holds (a lost host's, those released, those stored before hosts were
// recorded) are left to claiming, which takes only jobs of tasks (and
// plugin major versions) the host has.
constexpr char kClaimAtStart[] =
    "UPDATE jobs SET queued_by = $1 WHERE status IN ('pending', 'scheduled') AND queued_by = $1 "
    "RETURNING " JOB_READ_COLS;
// The first pending (or due scheduled) jobs of these tasks ($3) no live
// host holds, in queue order (model::queue_rank), at most $4; rows another
// host is claiming are skipped, not waited for. Picked in a materialized
// CTE: as an IN (subquery), the planner may run the subquery more than
// once and claim more than the limit.
static_assert(model::kPriorityStepUs == 10'000'000);
constexpr Statement kClaim{
    "WITH picked AS MATERIALIZED (SELECT id FROM jobs WHERE (status = 'pending' OR (status = 'scheduled' "
    "AND run_at <= " TASKHOST_PG_NOW_US
    ")) "
    "AND (task_name || '@' || split_part(coalesce(plugin_version, ''), '.', 1)) = ANY($3::text[]) "
    "AND queued_by IS DISTINCT FROM $1 AND " TASKHOST_UNHELD
    " ORDER BY greatest(run_at, submitted_at) - priority * 10000000::bigint, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
    "UPDATE jobs SET queued_by = $1 FROM picked WHERE jobs.id = picked.id RETURNING " JOB_READ_COLS_OF_JOBS};
#undef TASKHOST_UNHELD
// The host holding it drops it; those waiting on it wake.
constexpr char kCancelPending[] =
    "WITH c AS (UPDATE jobs SET status = 'canceled', finished_at = $2 WHERE id = $1 "
    "AND status IN ('pending', 'scheduled') RETURNING id) SELECT pg_notify('taskhost', 'c:' || id), "
    "pg_notify('taskhost', 'j:' || id) FROM c";
// Kept in the row too: a notice can be lost, and the running host's
// heartbeat reads it back (kRenew).
constexpr char kHeld[] =
    "SELECT " JOB_READ_COLS " FROM jobs WHERE status IN ('pending', 'scheduled') AND queued_by = $1 ORDER BY id";
constexpr char kRelease[] =
    "WITH r AS (UPDATE jobs SET queued_by = NULL WHERE id = ANY($1::text[]) AND status IN ('pending', 'scheduled') "
    "RETURNING id) "
    "SELECT pg_notify('taskhost', 'w:') FROM (SELECT count(*) FROM r) AS n";
constexpr char kAskCancel[] =
    "WITH c AS (UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, $2) WHERE id = $1 "
    "AND status = 'running' RETURNING id) SELECT pg_notify('taskhost', 'c:' || $1)";
constexpr Statement kNotify{"SELECT pg_notify('taskhost', p) FROM unnest($1::text[]) AS p"};
// Under PostgreSQL's 8000-byte payload limit.
constexpr size_t kNotifyPayloadMax = 7000;
constexpr char kFailJob[] =
    "UPDATE jobs SET status = 'failed', error = $2, finished_at = $3 "
    "WHERE id = $1 AND status IN ('pending', 'running', 'scheduled')";

#undef JOB_COLS
#undef JOB_READ_COLS
#undef JOB_READ_COLS_OF_JOBS

Job read_job(const Rows &r, int i) {
    Job j;
    j.id = r.text(i, 0);
    j.task_name = r.text(i, 1);
    j.params_json = r.text(i, 2);
    j.status = model::parse_job_status(r.text(i, 3)).value_or(JobStatus::failed);
    j.submitted_at = r.i64(i, 4);  // NULL reads as 0 = "not yet"
    j.started_at = r.i64(i, 5);
    j.finished_at = r.i64(i, 6);
    j.error = r.opt_text(i, 7);
    j.error_traceback = r.opt_text(i, 8);
    j.artifact_id = r.opt_text(i, 9);
    j.progress = r.is_null(i, 10) ? -1 : r.f64(i, 10);
    j.progress_message = r.text(i, 11);
    j.timeout_s = r.is_null(i, 12) ? 0 : r.f64(i, 12);
    j.attempts = static_cast<int>(r.i64(i, 13));
    j.plugin_version = r.text(i, 14);  // NULL reads as ""
    j.ran_version = r.text(i, 15);
    j.retry_safe = r.text(i, 16) == "t";
    j.priority = static_cast<int>(r.i64(i, 17));
    j.run_at = r.i64(i, 18);  // NULL reads as 0 = "now"
    j.idempotency_key = r.text(i, 19);  // NULL reads as ""
    j.request_hash = r.text(i, 20);
    j.retry = model::parse_stored_retry(r.text(i, 22));
    j.retry.max_attempts = std::max(1, static_cast<int>(r.i64(i, 21)));
    j.attempt_log = r.text(i, 23);  // NULL reads as ""
    j.schedule_id = r.text(i, 24);  // NULL reads as ""
    j.run_by = r.text(i, 25);
    return j;
}

std::vector<Job> read_jobs(const Rows &r) {
    std::vector<Job> out;
    out.reserve(static_cast<size_t>(r.size()));
    for (int i = 0; i < r.size(); ++i) out.push_back(read_job(r, i));
    return out;
}

// Job ids are time-ordered ULIDs.
void oldest_first(std::vector<Job> &jobs) {
    std::sort(jobs.begin(), jobs.end(), [](const Job &a, const Job &b) { return a.id < b.id; });
}

}  // namespace

// ---- writes ----

namespace {

// The INSERT of a job; true if it stored it (false: a row with its id, or
// its idempotency key, exists: nothing is stored, and the batch goes on).
bool insert_row(Connection &w, const Job &j, const HostLease &lease, bool for_any_host);

}  // namespace

void insert_job_row(Connection &w, const Job &j, const HostLease &lease, bool for_any_host) {
    if (!insert_row(w, j, lease, for_any_host))
        throw StoreError(StoreError::Kind::invalid, "UNIQUE constraint failed: jobs.id (" + j.id + ")");
}

bool insert_keyed_job_row(Connection &w, const Job &j, int64_t reusable_before, const HostLease &lease,
                          bool for_any_host) {
    Params free;
    free.add(std::string_view(j.idempotency_key)).add(reusable_before);
    w.run(kFreeKey, free);
    return insert_row(w, j, lease, for_any_host);
}

namespace {

bool insert_row(Connection &w, const Job &j, const HostLease &lease, bool for_any_host) {
    // Running now, or ended after it ran here (a start time): this host's.
    const bool ran_here = j.status == JobStatus::running || j.started_at != 0;
    Params p;
    p.add(std::string_view(j.id)).add(std::string_view(j.task_name)).add(std::string_view(j.params_json));
    p.add(to_string(j.status)).add_time(j.submitted_at).add_time(j.started_at).add_time(j.finished_at);
    p.add(j.error).add(j.error_traceback).add(j.artifact_id);
    if (j.progress < 0) p.add_null();
    else p.add(j.progress);
    p.add(std::string_view(j.progress_message));
    if (j.timeout_s > 0) p.add(j.timeout_s);
    else p.add_null();
    p.add(static_cast<int64_t>(j.attempts));
    p.add(j.plugin_version.empty() ? std::optional<std::string>() : j.plugin_version);
    p.add(j.ran_version.empty() ? std::optional<std::string>() : j.ran_version);
    p.add(std::string_view(j.retry_safe ? "true" : "false"));
    p.add(int64_t{j.priority}).add_time(j.run_at);
    if (j.idempotency_key.empty()) p.add_null().add_null();
    else p.add(std::string_view(j.idempotency_key)).add(std::string_view(j.request_hash));
    p.add(int64_t{j.retry.max_attempts});
    p.add(j.retry.max_attempts > 1 ? std::optional<std::string>(model::render_retry(j.retry)) : std::nullopt);
    p.add(j.attempt_log.empty() ? std::optional<std::string>() : j.attempt_log);
    p.add(j.schedule_id.empty() ? std::optional<std::string>() : j.schedule_id);
    if (ran_here) p.add(std::string_view(lease.host_id));  // run_by
    else p.add_null();
    if (for_any_host) p.add_null();  // queued_by
    else p.add(std::string_view(lease.host_id));
    p.add(lease.lease_us);
    return w.run(kInsertJob, p).affected() > 0;
}

}  // namespace

bool start_job(Connection &w, const std::string &id, int64_t started_at, const HostLease &lease) {
    Params p;
    p.add(std::string_view(id)).add(started_at).add(std::string_view(lease.host_id)).add(lease.lease_us);
    return w.run(kStartJob, p).affected() > 0;
}

void job_due(Connection &w, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    w.run(kJobDue, p);
}

void update_progress(Connection &w, const std::string &id, double fraction, const std::string &message) {
    Params p;
    p.add(std::string_view(id)).add(fraction).add(std::string_view(message));
    w.run(kUpdateProgress, p);
}

void finish_job(Connection &w, const std::string &id, Store::JobEnd &f, const Reporter &report,
                const HostLease &lease) {
    if (f.retry_at != 0) {  // the job is stored already (JobManager::retry_later)
        Params p;
        p.add(std::string_view(id)).add(f.retry_at).add(std::string_view(f.attempt_log));
        p.add(std::string_view(lease.host_id));
        w.run(kRetryJob, p);
        return;
    }
    std::optional<std::string> artifact_id;
    // Copied, not moved: an end kept while the server was away (Committer)
    // is applied again, and must say the same the second time.
    std::optional<std::string> error = f.error;
    JobStatus status = f.status;
    if (f.result_artifact) {
        // No savepoint: what insert_result_artifact refuses, it refuses
        // before writing, by a check of its own.
        try {
            artifact_id = insert_result_artifact(w, *f.result_artifact);
        } catch (const StoreError &e) {
            if (w.broken() || PQtransactionStatus(w.handle()) != PQTRANS_INTRANS) throw;  // the batch is gone
            // The result could not be stored (e.g. its parent vanished):
            // the job must still end, so it ends failed and says why.
            report("finish_job(" + id + "): result artifact not stored: " + e.what());
            status = JobStatus::failed;
            error = std::string("result could not be stored: ") + e.what();
        }
    }
    if (f.insert_first) {
        Job &j = *f.insert_first;
        j.status = status;
        j.finished_at = f.finished_at;
        if (!j.started_at) j.started_at = f.started_at;
        if (f.started_at) j.ran_version = f.ran_version;
        j.error = std::move(error);
        j.error_traceback = f.traceback;
        if (artifact_id) j.artifact_id = std::move(artifact_id);
        insert_job_row(w, j, lease);
    } else {
        Params p;
        p.add(std::string_view(id)).add(to_string(status)).add_time(f.finished_at);
        p.add(error).add(f.traceback).add(artifact_id).add_time(f.started_at).add(std::string_view(lease.host_id));
        p.add(f.ran_version.empty() ? std::optional<std::string>() : f.ran_version);
        w.run(kFinishJob, p);
    }
}

bool delete_job(Connection &w, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    return w.run(kDeleteJob, p).affected() > 0;
}

Store::Pruned prune_jobs(Connection &w, int64_t finished_before, std::optional<JobStatus> status, size_t limit,
                         int64_t keep_keyed_since) {
    Params p;
    p.add(finished_before).add_count(limit).add(keep_keyed_since);
    if (status) p.add(to_string(*status));
    // In a savepoint: a failure (a lock timeout, say) leaves the batch's
    // other writes alone.
    std::optional<Rows> result;
    in_savepoint(w, [&] { result.emplace(w.run(status ? kPruneByStatus : kPrune, p)); });
    const Rows &rows = *result;
    Store::Pruned out;
    for (int i = 0; i < rows.size(); ++i) out.jobs.push_back(rows.text(i, 0));
    if (rows.size()) out.artifacts = static_cast<size_t>(rows.i64(0, 1));
    return out;
}

std::vector<Job> recover(Connection &w, const std::string &running_error, int64_t now, const HostLease &lease) {
    Params again;
    again.add(std::string_view(lease.host_id)).add(int64_t{model::kMaxHostLossAttempts});
    again.add(now).add(std::string_view(running_error));
    w.run(kRequeueRunning, again);
    Params p;
    p.add(std::string_view(running_error)).add(now).add(std::string_view(lease.host_id));
    w.run(kFailRunning, p);
    Params mine;
    mine.add(std::string_view(lease.host_id));
    auto pending = read_jobs(w.run(kClaimAtStart, mine));
    oldest_first(pending);
    return pending;
}

void fail_jobs(Connection &w, const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) {
    for (const auto &[id, error] : errors) {
        Params p;
        p.add(std::string_view(id)).add(std::string_view(error)).add(now);
        w.run(kFailJob, p);
    }
}

// ---- a fleet ----

std::vector<Job> claim_pending(Connection &c, const std::vector<Store::Runnable> &runnable, size_t limit,
                               const HostLease &lease) {
    // "task@major", and "task@" for jobs stored before versions were.
    std::vector<std::string> keys;
    for (const auto &r : runnable) {
        keys.push_back(r.task + "@" + r.major);
        keys.push_back(r.task + "@");
    }
    Params p;
    p.add(std::string_view(lease.host_id)).add(lease.lease_us).add_array(keys).add_count(limit);
    auto claimed = read_jobs(c.run(kClaim, p));
    oldest_first(claimed);  // RETURNING keeps no order
    return claimed;
}

std::vector<Job> held_pending(Connection &c, const HostLease &lease) {
    Params p;
    p.add(std::string_view(lease.host_id));
    return read_jobs(c.run(kHeld, p));
}

void release_pending(Connection &c, const std::vector<std::string> &ids) {
    Params p;
    p.add_array(ids);
    c.run(kRelease, p);
}

bool cancel_pending(Connection &c, const std::string &id, int64_t now) {
    Params p;
    p.add(std::string_view(id)).add(now);
    return c.run(kCancelPending, p).size() > 0;
}

void ask_cancel(Connection &c, const std::string &id, int64_t now) {
    Params p;
    p.add(std::string_view(id)).add(now);
    c.run(kAskCancel, p);
}

void notify_changed(Connection &w, std::vector<std::string> &ids, bool work) {
    std::sort(ids.begin(), ids.end());  // one notice per job (progress may come several times a batch)
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<std::string> payloads;
    for (const std::string &id : ids) {
        if (payloads.empty() || payloads.back().size() + id.size() + 1 > kNotifyPayloadMax) payloads.emplace_back("j:");
        else payloads.back() += ',';
        payloads.back() += id;
    }
    if (work) payloads.emplace_back("w:");
    if (payloads.empty()) return;
    Params p;
    p.add_array(payloads);
    w.run(kNotify, p);
}

// ---- reads ----

std::optional<Job> get_job(Connection &r, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    Rows rows = r.run(kGetJob, p);
    if (!rows.size()) return std::nullopt;
    return read_job(rows, 0);
}

std::optional<Job> find_keyed_job(Connection &r, const std::string &key, int64_t submitted_from) {
    Params p;
    p.add(std::string_view(key)).add(submitted_from);
    Rows rows = r.run(kFindKeyedJob, p);
    if (!rows.size()) return std::nullopt;
    return read_job(rows, 0);
}

std::vector<Job> list_jobs(Connection &r, std::optional<JobStatus> status, size_t limit, size_t offset) {
    Params p;
    p.add_count(limit).add_count(offset);
    if (status) p.add(to_string(*status));
    return read_jobs(r.run(status ? kListJobsByStatus : kListJobs, p));
}

int64_t finished_at_of_newest(Connection &r, size_t n) {
    if (n == 0) return 0;
    Params p;
    p.add_count(n - 1);
    Rows rows = r.run(kFinishedAtOfNewest, p);
    return rows.size() ? rows.i64(0, 0) : 0;
}

size_t count_jobs(Connection &r, std::optional<JobStatus> status) {
    Params p;
    if (status) p.add(to_string(*status));
    Rows rows = r.run(status ? kCountJobsByStatus : kCountJobs, p);
    return rows.size() ? static_cast<size_t>(rows.i64(0, 0)) : 0;
}

}  // namespace taskhost::store::postgres
