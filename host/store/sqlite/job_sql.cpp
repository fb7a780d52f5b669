#include "store/sqlite/job_sql.hpp"

#include <algorithm>
#include <utility>

#include "store/sqlite/artifact_sql.hpp"

namespace taskhost::store::sqlite {

using model::Job;
using model::JobStatus;

namespace {

// Statements are cached per connection, keyed by these pointers.
#define JOB_COLS                                                                                                    \
    "id, task_name, params, status, submitted_at, started_at, finished_at, error, error_traceback, "                \
    "artifact_id, progress, progress_message, timeout_s, attempts, retry_safe, priority, run_at, idempotency_key, " \
    "request_hash, max_attempts, retry, attempt_log, schedule_id"

constexpr char kInsertJob[] = "INSERT INTO jobs (" JOB_COLS
                              ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
                              "?18, ?19, ?20, ?21, ?22, ?23)";
// A keyed job: a job submitted since then holding the key keeps it (the
// insert does nothing); an older one gives it up first (kFreeKey).
constexpr char kInsertKeyedJob[] =
    "INSERT INTO jobs (" JOB_COLS
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, "
    "?22, ?23) ON CONFLICT DO NOTHING";
constexpr char kFreeKey[] = "UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key = ?1 AND submitted_at < ?2";
constexpr char kFindKeyedJob[] = "SELECT " JOB_COLS " FROM jobs WHERE idempotency_key = ?1 AND submitted_at >= ?2";
// Only a job waiting to run starts: a cancel or delete that came first must
// stick. (A scheduled one is due by then; its row may not say so yet.)
constexpr char kStartJob[] =
    "UPDATE jobs SET status = 'running', started_at = ?2, attempts = attempts + 1 WHERE id = ?1 AND status IN "
    "('pending', 'scheduled')";
constexpr char kJobDue[] = "UPDATE jobs SET status = 'pending' WHERE id = ?1 AND status = 'scheduled'";
constexpr char kUpdateProgress[] = "UPDATE jobs SET progress = ?2, progress_message = ?3 WHERE id = ?1";
constexpr char kFinishJob[] =
    "UPDATE jobs SET status = ?2, finished_at = ?3, error = ?4, error_traceback = ?5, "
    "artifact_id = coalesce(?6, artifact_id), started_at = coalesce(started_at, ?7) WHERE id = ?1";
// A failed attempt that runs again: only from running (a cancel or delete
// that came first sticks).
constexpr char kRetryJob[] =
    "UPDATE jobs SET status = 'scheduled', run_at = ?2, attempt_log = ?3, started_at = NULL, progress = NULL, "
    "progress_message = '' WHERE id = ?1 AND status = 'running'";
constexpr char kDeleteJob[] = "DELETE FROM jobs WHERE id = ?1";
// Retention, oldest first, along the index on finished jobs' finished_at.
// Named: without statistics the planner prefers jobs_status and sorts every
// finished job for each batch (430 ms a batch at 870,000 jobs, against 2 ms).
#define TASKHOST_FINISHED "status IN ('completed', 'failed', 'canceled')"
// A job whose idempotency key still names it (submitted since ?4) stays.
#define TASKHOST_OLD_FINISHED                                                            \
    "SELECT id, artifact_id FROM jobs INDEXED BY jobs_finished WHERE " TASKHOST_FINISHED \
    " AND finished_at < ?1 AND (idempotency_key IS NULL OR submitted_at < ?4)"
constexpr char kOldFinished[] = TASKHOST_OLD_FINISHED " ORDER BY finished_at LIMIT ?2";
constexpr char kOldFinishedByStatus[] = TASKHOST_OLD_FINISHED " AND status = ?3 ORDER BY finished_at LIMIT ?2";
#undef TASKHOST_OLD_FINISHED
constexpr char kFinishedAtOfNewest[] = "SELECT finished_at FROM jobs INDEXED BY jobs_finished WHERE " TASKHOST_FINISHED
                                       " AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1 OFFSET ?1";
#undef TASKHOST_FINISHED
constexpr char kDeleteResult[] = "DELETE FROM artifacts WHERE id = ?1";
constexpr char kGetJob[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1";
// Job ids are time-ordered ULIDs: id order is submission order.
constexpr char kListJobs[] = "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?1 OFFSET ?2";
constexpr char kListJobsByStatus[] =
    "SELECT " JOB_COLS " FROM jobs WHERE status = ?3 ORDER BY id DESC LIMIT ?1 OFFSET ?2";
constexpr char kCountJobs[] = "SELECT count(*) FROM jobs";
constexpr char kCountJobsByStatus[] = "SELECT count(*) FROM jobs WHERE status = ?1";
// Before kFailRunning: the retry-safe ones with starts left (their retry
// policy's, or ?1 without one) run again, the lost attempt logged.
constexpr char kRequeueRunning[] =
    "UPDATE jobs SET status = 'pending', started_at = NULL, progress = NULL, progress_message = '', "
    "attempt_log = json_insert(coalesce(attempt_log, '[]'), '$[#]', json_object('attempt', attempts, "
    "'started_at', started_at, 'finished_at', ?2, 'error', ?3)) "
    "WHERE status = 'running' AND retry_safe <> 0 AND attempts < (CASE WHEN max_attempts > 1 THEN max_attempts "
    "ELSE ?1 END)";
constexpr char kFailRunning[] =
    "UPDATE jobs SET status = 'failed', error = ?1, finished_at = ?2 WHERE status = 'running'";
constexpr char kWaitingOldestFirst[] =
    "SELECT " JOB_COLS " FROM jobs WHERE status IN ('pending', 'scheduled') ORDER BY id";
constexpr char kFailJob[] =
    "UPDATE jobs SET status = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1 AND status IN ('pending', "
    "'running', 'scheduled')";

#undef JOB_COLS

Job read_job(const Stmt &s) {
    Job j;
    j.id = s.text(0);
    j.task_name = s.text(1);
    j.params_json = s.text(2);
    j.status = model::parse_job_status(s.text(3)).value_or(JobStatus::failed);
    j.submitted_at = s.i64(4);  // NULL reads as 0 = "not yet"
    j.started_at = s.i64(5);
    j.finished_at = s.i64(6);
    j.error = s.opt_text(7);
    j.error_traceback = s.opt_text(8);
    j.artifact_id = s.opt_text(9);
    j.progress = s.is_null(10) ? -1 : s.f64(10);
    j.progress_message = s.text(11);
    j.timeout_s = s.is_null(12) ? 0 : s.f64(12);
    j.attempts = static_cast<int>(s.i64(13));
    j.retry_safe = s.i64(14) != 0;
    j.priority = static_cast<int>(s.i64(15));
    j.run_at = s.i64(16);
    j.idempotency_key = s.text(17);  // NULL reads as ""
    j.request_hash = s.text(18);
    j.retry = model::parse_stored_retry(s.text(20));
    j.retry.max_attempts = std::max(1, static_cast<int>(s.i64(19)));
    j.attempt_log = s.text(21);
    j.schedule_id = s.text(22);
    return j;
}

}  // namespace

// ---- writes ----

namespace {

// `retry` holds the policy's text while the statement runs (bound, not copied).
void bind_job(Stmt &s, const Job &j, std::string &retry) {
    s.bind(1, std::string_view(j.id)).bind(2, std::string_view(j.task_name));
    s.bind(3, std::string_view(j.params_json)).bind(4, to_string(j.status));
    s.bind_time(5, j.submitted_at).bind_time(6, j.started_at).bind_time(7, j.finished_at);
    s.bind(8, j.error).bind(9, j.error_traceback).bind(10, j.artifact_id);
    if (j.progress < 0) s.bind_null(11);
    else s.bind(11, j.progress);
    s.bind(12, std::string_view(j.progress_message));
    if (j.timeout_s > 0) s.bind(13, j.timeout_s);
    else s.bind_null(13);
    s.bind(14, static_cast<int64_t>(j.attempts));
    s.bind(15, int64_t{j.retry_safe ? 1 : 0});
    s.bind(16, int64_t{j.priority}).bind_time(17, j.run_at);
    if (j.idempotency_key.empty()) s.bind_null(18).bind_null(19);
    else s.bind(18, std::string_view(j.idempotency_key)).bind(19, std::string_view(j.request_hash));
    s.bind(20, int64_t{j.retry.max_attempts});
    retry = j.retry.max_attempts > 1 ? model::render_retry(j.retry) : std::string();
    if (retry.empty()) s.bind_null(21);
    else s.bind(21, std::string_view(retry));
    if (j.attempt_log.empty()) s.bind_null(22);
    else s.bind(22, std::string_view(j.attempt_log));
    if (j.schedule_id.empty()) s.bind_null(23);
    else s.bind(23, std::string_view(j.schedule_id));
}

}  // namespace

void insert_job_row(Connection &w, const Job &j) {
    Stmt s(w, kInsertJob);
    std::string retry;
    bind_job(s, j, retry);
    s.run();
}

bool insert_keyed_job_row(Connection &w, const Job &j, int64_t reusable_before) {
    Stmt(w, kFreeKey).bind(1, std::string_view(j.idempotency_key)).bind(2, reusable_before).run();
    Stmt s(w, kInsertKeyedJob);
    std::string retry;
    bind_job(s, j, retry);
    return s.run() > 0;
}

bool start_job(Connection &w, std::string_view id, int64_t started_at) {
    return Stmt(w, kStartJob).bind(1, id).bind(2, started_at).run() > 0;
}

void job_due(Connection &w, std::string_view id) { Stmt(w, kJobDue).bind(1, id).run(); }

void update_progress(Connection &w, std::string_view id, double fraction, std::string_view message) {
    Stmt(w, kUpdateProgress).bind(1, id).bind(2, fraction).bind(3, message).run();
}

// In as few B-tree writes as it takes. A job never stored before
// (insert_first) is inserted once, already in its final state.
void finish_job(Connection &w, const std::string &id, Store::JobEnd &f, const Reporter &report) {
    if (f.retry_at != 0) {  // the job is stored already (JobManager::retry_later)
        Stmt(w, kRetryJob)
            .bind(1, std::string_view(id))
            .bind_time(2, f.retry_at)
            .bind(3, std::string_view(f.attempt_log))
            .run();
        return;
    }
    std::optional<std::string> artifact_id;
    std::optional<std::string> error = std::move(f.error);
    JobStatus status = f.status;
    if (f.result_artifact) {
        try {
            artifact_id = insert_result_artifact(w, *f.result_artifact);
        } catch (const StoreError &e) {
            if (sqlite3_get_autocommit(w.handle())) throw;  // the batch is gone
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
        j.error = std::move(error);
        j.error_traceback = std::move(f.traceback);
        if (artifact_id) j.artifact_id = std::move(artifact_id);
        insert_job_row(w, j);
    } else {
        Stmt s(w, kFinishJob);
        s.bind(1, std::string_view(id)).bind(2, to_string(status)).bind_time(3, f.finished_at);
        s.bind(4, error).bind(5, f.traceback).bind(6, artifact_id).bind_time(7, f.started_at).run();
    }
}

bool delete_job(Connection &w, const std::string &id) {
    return Stmt(w, kDeleteJob).bind(1, std::string_view(id)).run() > 0;
}

Store::Pruned prune_jobs(Connection &w, int64_t finished_before, std::optional<JobStatus> status, size_t limit,
                         int64_t keep_keyed_since) {
    Store::Pruned out;
    // All or nothing: a failure leaves the batch's other writes alone.
    in_savepoint(w, [&] {
        out = {};
        std::vector<std::string> artifacts;
        {
            Stmt s(w, status ? kOldFinishedByStatus : kOldFinished);
            s.bind(1, finished_before).bind_count(2, limit).bind(4, keep_keyed_since);
            if (status) s.bind(3, to_string(*status));
            while (s.step()) {
                out.jobs.push_back(s.text(0));
                if (!s.is_null(1)) artifacts.push_back(s.text(1));
            }
        }
        for (const auto &id : out.jobs) Stmt(w, kDeleteJob).bind(1, std::string_view(id)).run();
        // Its children (artifacts a task saved under it) stay, as DELETE of
        // an artifact leaves them (ON DELETE SET NULL).
        for (const auto &id : artifacts) out.artifacts += Stmt(w, kDeleteResult).bind(1, std::string_view(id)).run();
    });
    return out;
}

std::vector<Job> recover(Connection &w, const std::string &running_error, int64_t now) {
    std::vector<Job> pending;
    in_savepoint(w, [&] {
        Stmt(w, kRequeueRunning)
            .bind(1, int64_t{model::kMaxHostLossAttempts})
            .bind(2, now)
            .bind(3, std::string_view(running_error))
            .run();
        Stmt(w, kFailRunning).bind(1, std::string_view(running_error)).bind(2, now).run();
        Stmt s(w, kWaitingOldestFirst);
        while (s.step()) pending.push_back(read_job(s));
    });
    return pending;
}

void fail_jobs(Connection &w, const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) {
    for (const auto &[id, error] : errors)
        Stmt(w, kFailJob).bind(1, std::string_view(id)).bind(2, std::string_view(error)).bind(3, now).run();
}

// ---- reads ----

std::optional<Job> get_job(Connection &r, const std::string &id) {
    Stmt s(r, kGetJob);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    return read_job(s);
}

std::optional<Job> find_keyed_job(Connection &r, const std::string &key, int64_t submitted_from) {
    Stmt s(r, kFindKeyedJob);
    s.bind(1, std::string_view(key)).bind(2, submitted_from);
    if (!s.step()) return std::nullopt;
    return read_job(s);
}

std::vector<Job> list_jobs(Connection &r, std::optional<JobStatus> status, size_t limit, size_t offset) {
    std::vector<Job> out;
    Stmt s(r, status ? kListJobsByStatus : kListJobs);
    s.bind_count(1, limit).bind_count(2, offset);
    if (status) s.bind(3, to_string(*status));
    while (s.step()) out.push_back(read_job(s));
    return out;
}

int64_t finished_at_of_newest(Connection &r, size_t n) {
    Stmt s(r, kFinishedAtOfNewest);
    if (n == 0) return 0;
    s.bind_count(1, n - 1);
    return s.step() ? s.i64(0) : 0;
}

size_t count_jobs(Connection &r, std::optional<JobStatus> status) {
    Stmt s(r, status ? kCountJobsByStatus : kCountJobs);
    if (status) s.bind(1, to_string(*status));
    return s.step() ? static_cast<size_t>(s.i64(0)) : 0;
}

}  // namespace taskhost::store::sqlite
