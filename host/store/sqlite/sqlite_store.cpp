// Store: group-committing writer thread + pool of read connections.
//
// Writes are queued as Ops. The writer takes everything queued (up to
// max_batch), applies it in one BEGIN IMMEDIATE … COMMIT, then wakes the
// callers of that batch. Blocking calls borrow their inputs from the waiting
// caller (no copies); fire-and-forget calls own theirs. An op that fails
// alone (constraint, missing parent) is undone by itself — multi-statement
// ops run inside a SAVEPOINT, single statements are atomic on their own —
// and only its caller sees the error.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>

#include <pthread.h>
#include <sched.h>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "store/sqlite/connection.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/clock.hpp"
#include "util/thread_name.hpp"
#include "util/ulid.hpp"

namespace taskhost::store {

using model::Artifact;
using model::ArtifactInput;
using model::Job;
using model::JobStatus;

namespace {

using detail::Connection;
using detail::Stmt;
using model::parse_job_status;

// Memory mode only. memdb has no WAL: a reader is locked out for the whole
// of a write transaction, and SQLite's busy handler polls with sleeps that
// grow to 100 ms (a reader measured 0.6 s waits under load, and could hit
// busy_timeout). So the store's own connections take turns here instead:
// readers share, the writer batch is exclusive, and waiting is a proper
// block. Writer-preferring, so a stream of readers cannot starve the writer;
// the single writer lets readers in between batches.
class RwGate {
public:
    RwGate() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&lock_, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    ~RwGate() { pthread_rwlock_destroy(&lock_); }
    RwGate(const RwGate &) = delete;
    RwGate &operator=(const RwGate &) = delete;
    void lock_shared() { pthread_rwlock_rdlock(&lock_); }
    void lock() { pthread_rwlock_wrlock(&lock_); }
    void unlock() { pthread_rwlock_unlock(&lock_); }

private:
    pthread_rwlock_t lock_;
};

// ---- SQL (statements are cached per connection, keyed by these pointers) ----

#define JOB_COLS                                                                                     \
    "id, task_name, params, status, submitted_at, started_at, finished_at, error, error_traceback, " \
    "artifact_id, progress, progress_message, timeout_s"
#define ARTIFACT_COLS "id, parent_id, level, data, tags, created_at, updated_at"

constexpr char kInsertJob[] =
    "INSERT INTO jobs (" JOB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
// Only a pending job starts: a cancel that was queued first must stick.
constexpr char kMarkRunning[] =
    "UPDATE jobs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'pending'";
constexpr char kUpdateProgress[] = "UPDATE jobs SET progress = ?2, progress_message = ?3 WHERE id = ?1";
constexpr char kFinishJob[] =
    "UPDATE jobs SET status = ?2, finished_at = ?3, error = ?4, error_traceback = ?5, "
    "artifact_id = coalesce(?6, artifact_id), started_at = coalesce(started_at, ?7) WHERE id = ?1";
constexpr char kDeleteJob[] = "DELETE FROM jobs WHERE id = ?1";
constexpr char kGetJob[] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1";
// Job ids are time-ordered ULIDs: id order is submission order.
constexpr char kListJobs[] = "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?1 OFFSET ?2";
constexpr char kListJobsByStatus[] =
    "SELECT " JOB_COLS " FROM jobs WHERE status = ?3 ORDER BY id DESC LIMIT ?1 OFFSET ?2";
constexpr char kCountJobs[] = "SELECT count(*) FROM jobs";
constexpr char kCountJobsByStatus[] = "SELECT count(*) FROM jobs WHERE status = ?1";
constexpr char kFailRunning[] =
    "UPDATE jobs SET status = 'failed', error = ?1, finished_at = ?2 WHERE status = 'running'";
constexpr char kPendingOldestFirst[] = "SELECT " JOB_COLS " FROM jobs WHERE status = 'pending' ORDER BY id";

constexpr char kArtifactLevel[] = "SELECT level FROM artifacts WHERE id = ?1";
constexpr char kArtifactForWrite[] = "SELECT parent_id, level, data, tags, created_at FROM artifacts WHERE id = ?1";
constexpr char kInsertArtifact[] = "INSERT INTO artifacts (" ARTIFACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
constexpr char kUpdateArtifact[] =
    "UPDATE artifacts SET parent_id = ?2, level = ?3, data = ?4, tags = ?5, updated_at = ?6 WHERE id = ?1";
// Is ?2 an ancestor of ?1 (parent, grandparent, …)? UNION stops on any loop.
constexpr char kIsAncestor[] =
    "WITH RECURSIVE anc(id) AS ("
    "  SELECT parent_id FROM artifacts WHERE id = ?1"
    "  UNION SELECT a.parent_id FROM artifacts a JOIN anc ON a.id = anc.id"
    ") SELECT 1 FROM anc WHERE id = ?2 LIMIT 1";
// Every descendant of ?1 gets ?2 + its depth below ?1, in one statement.
constexpr char kCascadeLevels[] =
    "WITH RECURSIVE sub(id, depth) AS ("
    "  SELECT id, 1 FROM artifacts WHERE parent_id = ?1"
    "  UNION SELECT a.id, sub.depth + 1 FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    "  WHERE sub.depth < 1000000"
    ") UPDATE artifacts SET level = ?2 + sub.depth FROM sub WHERE artifacts.id = sub.id";
constexpr char kDeleteArtifact[] = "DELETE FROM artifacts WHERE id = ?1";
constexpr char kGetArtifact[] = "SELECT " ARTIFACT_COLS " FROM artifacts WHERE id = ?1";
constexpr char kListArtifacts[] = "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY seq LIMIT ?1 OFFSET ?2";
constexpr char kCountArtifacts[] = "SELECT count(*) FROM artifacts";
constexpr char kSubtree[] =
    "WITH RECURSIVE sub(id) AS ("
    "  SELECT id FROM artifacts WHERE id = ?1"
    "  UNION SELECT a.id FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    ") SELECT a.id, a.parent_id, a.level, a.data, a.tags, a.created_at, a.updated_at "
    "FROM artifacts a JOIN sub ON a.id = sub.id ORDER BY a.id <> ?1, a.seq";

constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kSavepoint[] = "SAVEPOINT op";
constexpr char kRelease[] = "RELEASE op";
constexpr char kRollbackTo[] = "ROLLBACK TO op";
constexpr char kSelectOne[] = "SELECT 1";

#undef JOB_COLS
#undef ARTIFACT_COLS

Job read_job(const Stmt &s) {
    Job j;
    j.id = s.text(0);
    j.task_name = s.text(1);
    j.params_json = s.text(2);
    j.status = parse_job_status(s.text(3)).value_or(JobStatus::failed);
    j.submitted_at = s.i64(4);  // NULL reads as 0 = "not yet"
    j.started_at = s.i64(5);
    j.finished_at = s.i64(6);
    j.error = s.opt_text(7);
    j.error_traceback = s.opt_text(8);
    j.artifact_id = s.opt_text(9);
    j.progress = s.is_null(10) ? -1 : s.f64(10);
    j.progress_message = s.text(11);
    j.timeout_s = s.is_null(12) ? 0 : s.f64(12);
    return j;
}

Artifact read_artifact(const Stmt &s) {
    Artifact a;
    a.id = s.text(0);
    a.parent_id = s.opt_text(1);
    a.level = static_cast<int>(s.i64(2));
    a.data_json = s.text(3);
    a.tags_json = s.text(4);
    a.created_at = s.i64(5);
    a.updated_at = s.i64(6);
    return a;
}

// SQLite's LIMIT takes a signed 64-bit count; anything larger means "all".
int64_t sql_count(size_t n) { return n > static_cast<size_t>(INT64_MAX) ? -1 : static_cast<int64_t>(n); }

[[noreturn]] void invalid(const std::string &msg) { throw StoreError(StoreError::Kind::invalid, msg); }

// ---- the write queue ----------------------------------------------------------

// Lives on a blocked caller's stack; written by the writer thread, read by
// the caller once `done` is seen under the queue mutex.
struct Waiter {
    bool done = false;
    uint64_t batch = 0;  // the batch expected to carry the op (picks the condvar)
    std::exception_ptr error;
};

std::string message_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception &e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

// One payload per kind of write. Blocking ones borrow their inputs from the
// waiting caller and write their results through its pointers; the others
// own theirs.
struct InsertJob {
    const Job *job;
};
struct MarkRunning {
    std::string id;
    int64_t started_at;
};
struct UpdateProgress {
    std::string id;
    double fraction;
    std::string message;
};
struct FinishJob {
    // Behind a pointer: a JobEnd is large, and every queued op is the size
    // of the largest kind.
    struct Data {
        Store::JobEnd end;
        std::function<void()> on_durable;
        std::function<void(const std::string &)> on_failed;
    };
    std::string id;
    std::unique_ptr<Data> data;
};
struct DeleteJob {
    const std::string *id;
    bool *deleted;
};
struct SaveArtifact {
    const ArtifactInput *input;
    Artifact *saved;
};
struct UpdateArtifact {
    const std::string *id;
    const ArtifactInput *input;
    std::optional<Artifact> *updated;
};
struct DeleteArtifact {
    const std::string *id;
    bool *deleted;
};
struct Recover {
    const std::string *running_error;
    int64_t now;
    std::vector<Job> *pending;
};
struct Flush {};  // committing its batch is the point
struct Probe {};  // a real write (page 1), to see whether commits work again

using Op = std::variant<InsertJob, MarkRunning, UpdateProgress, FinishJob, DeleteJob, SaveArtifact, UpdateArtifact,
                        DeleteArtifact, Recover, Flush, Probe>;

// A queued op and the caller blocked on it (none for fire-and-forget ops).
struct Write {
    Op op;
    Waiter *waiter = nullptr;
};

template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};

}  // namespace

struct SqliteStore::Impl {
    Options options;
    std::string url;
    std::string open_name;  // file path, or the memdb URI
    bool memory = false;

    std::unique_ptr<Connection> writer_conn;  // writer thread only (after construction)

    // Read connections not currently lent out.
    mutable std::mutex pool_mu;
    mutable std::vector<std::unique_ptr<Connection>> pool;

    mutable std::mutex q_mu;
    std::condition_variable q_cv;  // wakes the writer
    // Wakes blocked callers. Two, by batch parity: callers queued while batch
    // N commits wait for N+1 on the other one, so finishing N wakes only
    // N's callers, with one broadcast (the writer's critical path stays one
    // syscall, not one per caller).
    std::condition_variable done_cv[2];
    uint64_t batches_taken = 0;  // guarded by q_mu
    std::vector<Write> queue;
    bool writer_sleeping = false;
    bool stopping = false;
    std::thread writer;

    // Writer-thread state.
    std::vector<Write> batch;
    std::vector<std::function<void()>> callbacks;
    std::vector<std::string_view> ending_ids;  // ids of the batch's finish_job ops

    std::atomic<uint64_t> commits{0}, writes{0}, coalesced{0};
    // Why the last commit that should have written failed; empty once one
    // succeeds again. What the health check reports.
    mutable std::mutex failure_mu;
    std::string last_failure;
    std::atomic<bool> failing{false};        // !last_failure.empty(), for the commit path
    std::atomic<bool> probe_pending{false};  // a probe is queued (at most one)
    uint64_t wal_commits = 0;                // commits that wrote WAL frames (writer thread)

    std::string write_failure() const {
        if (!failing.load(std::memory_order_acquire)) return {};
        std::lock_guard lock(failure_mu);
        return last_failure;
    }
    void set_write_failure(std::string what) {
        std::lock_guard lock(failure_mu);
        failing.store(!what.empty(), std::memory_order_release);
        last_failure = std::move(what);
    }

    // ---- checkpoints (file databases) -------------------------------------

    // At SQLite's default the writer checkpoints inline every 1,000 pages:
    // under load a commit waited for a checkpoint's copying and two fsyncs
    // every ~20 ms (one-request p99 3.3 ms). Here a connection of its own
    // does it, asked by the writer's WAL hook.
    std::unique_ptr<Connection> checkpoint_conn;
    std::thread checkpointer;
    std::mutex ckpt_mu;
    std::condition_variable ckpt_cv;
    bool ckpt_wanted = false;  // guarded by ckpt_mu
    bool ckpt_stop = false;    // guarded by ckpt_mu
    int wal_frames_seen = 0;   // the WAL's size at the last commit (committing thread only)
    // Frames the last checkpoint copied; 0 once the WAL restarted.
    std::atomic<int> wal_backfilled{0};
    std::atomic<bool> ckpt_running{false};  // the background connection is checkpointing
    std::atomic<uint64_t> checkpoints{0}, writer_checkpoints{0};

    // sqlite3_wal_hook: after each commit of the writer connection.
    static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames) {
        auto &m = *static_cast<Impl *>(arg);
        ++m.wal_commits;  // SQLite calls this only for a commit that appended frames
        if (frames < m.wal_frames_seen) m.wal_backfilled.store(0);  // the WAL restarted from its start
        m.wal_frames_seen = frames;
        const int left = frames - m.wal_backfilled.load();  // frames no checkpoint has copied yet
        const bool background = m.checkpointer.joinable();
        if (frames >= static_cast<int>(m.options.wal_cap_pages) && !m.ckpt_running.load()) {
            // No commit can come in between: this checkpoint catches up, and
            // the next commit restarts the WAL. Usually the background one
            // has just copied all but the last few frames. (If it started
            // meanwhile, this one is refused as busy and the next commit
            // tries again.)
            int log = 0, copied = 0;
            if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK) {
                m.wal_backfilled.store(copied);
                m.writer_checkpoints.fetch_add(1, std::memory_order_relaxed);
            }
        } else if (background && left >= static_cast<int>(std::max<size_t>(1, m.options.checkpoint_pages))) {
            std::lock_guard lock(m.ckpt_mu);
            if (!m.ckpt_wanted) {
                m.ckpt_wanted = true;
                m.ckpt_cv.notify_one();
            }
        }
        return SQLITE_OK;
    }

    void checkpointer_main() {
        name_this_thread("th-checkpoint");
        std::unique_lock lock(ckpt_mu);
        for (;;) {
            ckpt_cv.wait(lock, [&] { return ckpt_wanted || ckpt_stop; });
            if (ckpt_stop) return;
            ckpt_wanted = false;
            lock.unlock();
            ckpt_running.store(true);
            int log = 0, copied = 0;
            const int rc =
                sqlite3_wal_checkpoint_v2(checkpoint_conn->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
            if (rc == SQLITE_OK) {
                wal_backfilled.store(copied);
                checkpoints.fetch_add(1, std::memory_order_relaxed);
            } else if (rc != SQLITE_BUSY) {
                report(std::string("WAL checkpoint failed: ") + sqlite3_errmsg(checkpoint_conn->handle()));
            }
            ckpt_running.store(false);
            lock.lock();
        }
    }

    void start_checkpoints() {
        if (options.background_checkpoints) {
            checkpoint_conn = std::make_unique<Connection>(open_name, memory, Connection::Role::checkpointer);
            checkpointer = std::thread([this] { checkpointer_main(); });
        }
        sqlite3_wal_hook(writer_conn->handle(), &Impl::on_wal_commit, this);  // replaces the autocheckpoint
    }

    void stop_checkpointer() {
        if (!checkpointer.joinable()) return;
        {
            std::lock_guard lock(ckpt_mu);
            ckpt_stop = true;
        }
        ckpt_cv.notify_one();
        checkpointer.join();
    }

    // ---- reads ------------------------------------------------------------

    mutable RwGate gate;  // used in memory mode only

    // A read connection for one call (statements borrowed from it must be
    // destroyed first, which declaration order in the callers ensures).
    struct Lease {
        const Impl &impl;
        std::unique_ptr<Connection> conn;
        explicit Lease(const Impl &i) : impl(i) {
            conn = i.checkout();
            if (impl.memory) impl.gate.lock_shared();
        }
        ~Lease() {
            if (impl.memory) impl.gate.unlock();
            impl.checkin(std::move(conn));
        }
        Connection &operator*() { return *conn; }
    };

    std::unique_ptr<Connection> checkout() const {
        {
            std::lock_guard lock(pool_mu);
            if (!pool.empty()) {
                auto c = std::move(pool.back());
                pool.pop_back();
                return c;
            }
        }
        // All busy: grow. Opened outside the lock so other readers go on.
        return std::make_unique<Connection>(open_name, memory, Connection::Role::reader);
    }
    void checkin(std::unique_ptr<Connection> c) const {
        if (!c) return;
        std::lock_guard lock(pool_mu);
        pool.push_back(std::move(c));
    }

    // ---- queue handoff ----------------------------------------------------

    void post(Op &&op) {
        std::unique_lock lock(q_mu);
        queue.emplace_back(std::move(op));
        wake_writer_locked();
    }

    // Queues a blocking op and waits for its batch to commit; rethrows the
    // op's own error.
    void call(Op &&op) {
        // From on_durable (the writer thread) this would wait for itself.
        if (std::this_thread::get_id() == writer.get_id())
            throw StoreError(StoreError::Kind::internal, "blocking store write called from the writer thread");
        Waiter w;
        std::unique_lock lock(q_mu);
        w.batch = batches_taken + 1;
        queue.emplace_back(std::move(op), &w);
        wake_writer_locked();
        done_cv[w.batch & 1].wait(lock, [&] { return w.done; });
        if (w.error) std::rethrow_exception(w.error);
    }

    void wake_writer_locked() {
        // Only a sleeping writer needs the (syscall-costing) notify; a busy
        // one picks the op up when it comes back for the next batch.
        if (writer_sleeping) {
            writer_sleeping = false;
            q_cv.notify_one();
        }
    }

    void report(const std::string &what) const {
        if (options.on_write_error) {
            try {
                options.on_write_error(what);
                return;
            } catch (...) {
            }
        }
        std::fprintf(stderr, "taskhost store: %s\n", what.c_str());
    }

    // ---- writer thread ----------------------------------------------------

    void writer_main() {
        name_this_thread("th-store");
        const size_t max_batch = options.max_batch ? options.max_batch : 1;
        for (;;) {
            {
                std::unique_lock lock(q_mu);
                while (queue.empty() && !stopping) {
                    writer_sleeping = true;
                    q_cv.wait(lock);
                }
                writer_sleeping = false;
                if (queue.empty()) return;  // stopping, and everything is drained
                if (queue.size() < 4) {
                    // A small batch: let submitters that are already
                    // runnable add their writes to this commit (measured:
                    // about 1.5x the writes per commit under load; no cost
                    // when nothing else is runnable).
                    lock.unlock();
                    sched_yield();
                    lock.lock();
                }
                ++batches_taken;
                if (queue.size() <= max_batch) {
                    batch.swap(queue);  // both keep their capacity: no allocation
                } else {
                    auto cut = queue.begin() + static_cast<std::ptrdiff_t>(max_batch);
                    batch.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(cut));
                    queue.erase(queue.begin(), cut);
                }
            }

            if (memory) gate.lock();
            run_batch();
            if (memory) gate.unlock();
            if (probe_pending.load(std::memory_order_relaxed) &&
                std::any_of(batch.begin(), batch.end(),
                            [](const Write &w) { return std::holds_alternative<Probe>(w.op); }))
                probe_pending.store(false, std::memory_order_relaxed);

            // A flush is answered after the callbacks (below): whoever
            // flushes may rely on their effects, or tear down what they use.
            bool flushes = notify_waiters(false);
            for (auto &cb : callbacks) {
                try {
                    cb();
                } catch (const std::exception &e) {
                    report(std::string("on_durable callback threw: ") + e.what());
                } catch (...) {
                    report("on_durable callback threw");
                }
            }
            callbacks.clear();
            if (flushes) notify_waiters(true);
            batch.clear();
        }
    }

    // Marks the batch's waiters done: those of flushes, or all others.
    // Returns whether the batch holds a flush. Normally every waiter here
    // expects this batch; ops left over from an oversized queue expected an
    // earlier one, so each is notified by its own parity.
    bool notify_waiters(bool flush_waiters) {
        bool wake[2] = {false, false};
        bool has_flush = false;
        {
            std::lock_guard lock(q_mu);
            for (Write &w : batch) {
                if (!w.waiter) continue;
                const bool is_flush = std::holds_alternative<Flush>(w.op);
                has_flush |= is_flush;
                if (is_flush != flush_waiters) continue;
                w.waiter->done = true;
                wake[w.waiter->batch & 1] = true;
            }
        }
        for (int p = 0; p < 2; ++p)
            if (wake[p]) done_cv[p].notify_all();
        return has_flush;
    }

    void run_batch() {
        Connection &w = *writer_conn;
        const uint64_t wal_commits_before = wal_commits;
        std::exception_ptr batch_error;
        try {
            Stmt(w, kBegin).run();
        } catch (...) {
            batch_error = std::current_exception();
        }
        collect_ending_ids();
        if (!batch_error) {
            for (Write &write : batch) {
                if (redundant(write.op)) {
                    coalesced.fetch_add(1, std::memory_order_relaxed);
                    continue;
                }
                try {
                    apply(w, write.op);
                } catch (...) {
                    if (sqlite3_get_autocommit(w.handle())) {
                        // SQLite rolled the whole transaction back (I/O
                        // error, disk full…): nothing of this batch stands.
                        batch_error = std::current_exception();
                        break;
                    }
                    op_failed(write, std::current_exception());
                }
            }
        }
        if (!batch_error) {
            try {
                Stmt(w, kCommit).run();
            } catch (...) {
                batch_error = std::current_exception();
            }
        }
        if (batch_error) {
            if (!sqlite3_get_autocommit(w.handle())) sqlite3_exec(w.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
            callbacks.clear();  // nothing became durable
            set_write_failure(message_of(batch_error));
            for (Write &write : batch) op_failed(write, batch_error);
            return;
        }
        // Commits work again, if this one wrote something: one that changed
        // no page (a flush, a delete of nothing) proves nothing. Without a
        // WAL (memory), any op but a flush counts.
        if (failing.load(std::memory_order_relaxed) &&
            (memory ? std::any_of(batch.begin(), batch.end(),
                                  [](const Write &w) { return !std::holds_alternative<Flush>(w.op); })
                    : wal_commits != wal_commits_before))
            set_write_failure({});
        commits.fetch_add(1, std::memory_order_relaxed);
        writes.fetch_add(batch.size(), std::memory_order_relaxed);
    }

    // A fast job's `running` mark and its end usually arrive in the same
    // batch; the end stores started_at itself, so the mark is skipped.
    void collect_ending_ids() {
        ending_ids.clear();
        if (batch.size() < 2) return;
        for (const Write &w : batch)
            if (const auto *finish = std::get_if<FinishJob>(&w.op)) ending_ids.push_back(finish->id);
        std::sort(ending_ids.begin(), ending_ids.end());
    }
    bool redundant(const Op &op) const {
        const auto *mark = std::get_if<MarkRunning>(&op);
        return mark && std::binary_search(ending_ids.begin(), ending_ids.end(), std::string_view(mark->id));
    }

    void op_failed(Write &write, std::exception_ptr error) {
        if (write.waiter) {
            write.waiter->error = error;
            return;
        }
        const std::string what = message_of(error);
        std::visit(Overloaded{
                       [&](MarkRunning &op) { report("mark_running(" + op.id + ") failed: " + what); },
                       [&](UpdateProgress &op) { report("update_progress(" + op.id + ") failed: " + what); },
                       [&](Probe &) { report("probe() failed: " + what); },
                       [&](FinishJob &op) {
                           report("finish_job(" + op.id + ") failed: " + what);
                           // Once per op, though a batch that fails after the
                           // op failed on its own calls this again. It runs
                           // inside run_batch (mid-transaction, and for a
                           // memory database under the exclusive gate): the
                           // callback must not read from the store.
                           if (!op.data->on_failed) return;
                           auto on_failed = std::exchange(op.data->on_failed, nullptr);
                           try {
                               on_failed(what);
                           } catch (...) {
                               report("on_failed callback threw");
                           }
                       },
                       [](auto &) {},  // the other kinds are blocking: their caller has the error
                   },
                   write.op);
    }

    template <class F>
    static void in_savepoint(Connection &w, F &&body) {
        Stmt(w, kSavepoint).run();
        try {
            body();
        } catch (...) {
            if (!sqlite3_get_autocommit(w.handle())) {
                Stmt(w, kRollbackTo).run();
                Stmt(w, kRelease).run();
            }
            throw;
        }
        Stmt(w, kRelease).run();
    }

    void apply(Connection &w, Op &op) {
        std::visit(
            Overloaded{
                [&](InsertJob &o) { insert_job_row(w, *o.job); },
                [&](MarkRunning &o) {
                    Stmt(w, kMarkRunning).bind(1, std::string_view(o.id)).bind(2, o.started_at).run();
                },
                [&](UpdateProgress &o) {
                    Stmt s(w, kUpdateProgress);
                    s.bind(1, std::string_view(o.id)).bind(2, o.fraction).bind(3, std::string_view(o.message)).run();
                },
                [&](FinishJob &o) { apply_finish(w, o); },
                [&](DeleteJob &o) { *o.deleted = Stmt(w, kDeleteJob).bind(1, std::string_view(*o.id)).run() > 0; },
                [&](SaveArtifact &o) {
                    const ArtifactInput &in = *o.input;
                    const std::string id = in.id ? *in.id : new_ulid_string();
                    in_savepoint(w,
                                 [&] { *o.saved = save(w, id, *in.data_json, in.parent_id, in.tags_json, now_us()); });
                },
                [&](UpdateArtifact &o) { in_savepoint(w, [&] { *o.updated = update(w, *o.id, *o.input); }); },
                [&](DeleteArtifact &o) {
                    // ON DELETE SET NULL orphans the children; their level stays.
                    *o.deleted = Stmt(w, kDeleteArtifact).bind(1, std::string_view(*o.id)).run() > 0;
                },
                [&](Recover &o) {
                    in_savepoint(w, [&] {
                        Stmt(w, kFailRunning).bind(1, std::string_view(*o.running_error)).bind(2, o.now).run();
                        Stmt s(w, kPendingOldestFirst);
                        while (s.step()) o.pending->push_back(read_job(s));
                    });
                },
                [](Flush &) {},
                [&](Probe &) {
                    // Sets the schema version to itself: it changes nothing but
                    // dirties page 1, so the commit has to write to the disk.
                    static const std::string probe = "PRAGMA user_version = " + std::to_string(detail::kSchemaVersion);
                    Stmt(w, probe.c_str()).run();
                },
            },
            op);
    }

    static void insert_job_row(Connection &w, const Job &j) {
        Stmt s(w, kInsertJob);
        s.bind(1, std::string_view(j.id)).bind(2, std::string_view(j.task_name));
        s.bind(3, std::string_view(j.params_json)).bind(4, to_string(j.status));
        s.bind_time(5, j.submitted_at).bind_time(6, j.started_at).bind_time(7, j.finished_at);
        s.bind(8, j.error).bind(9, j.error_traceback).bind(10, j.artifact_id);
        if (j.progress < 0) s.bind_null(11);
        else s.bind(11, j.progress);
        s.bind(12, std::string_view(j.progress_message));
        if (j.timeout_s > 0) s.bind(13, j.timeout_s);
        else s.bind_null(13);
        s.run();
    }

    // The end of a job: its result artifact and its terminal state, in as few
    // B-tree writes as it takes. A job never stored before (insert_first) is
    // inserted once, already in its final state.
    void apply_finish(Connection &w, FinishJob &op) {
        FinishJob::Data &fd = *op.data;
        Store::JobEnd &f = fd.end;
        std::optional<std::string> artifact_id;
        std::optional<std::string> error = std::move(f.error);
        JobStatus status = f.status;
        if (f.result_artifact) {
            try {
                artifact_id = store_result_artifact(w, *f.result_artifact);
            } catch (const StoreError &e) {
                if (sqlite3_get_autocommit(w.handle())) throw;  // the batch is gone
                // The result could not be stored (e.g. its parent vanished):
                // the job must still end, so it ends failed and says why.
                report("finish_job(" + op.id + "): result artifact not stored: " + e.what());
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
            s.bind(1, std::string_view(op.id)).bind(2, to_string(status)).bind_time(3, f.finished_at);
            s.bind(4, error).bind(5, f.traceback).bind(6, artifact_id).bind_time(7, f.started_at).run();
        }
        if (fd.on_durable) callbacks.push_back(std::move(fd.on_durable));
    }

    // A job's result artifact, returning its id. The usual one (fresh id, no
    // parent) is one INSERT, atomic by itself; one with a parent goes
    // through the general save, in a savepoint so a failure leaves nothing.
    static std::string store_result_artifact(Connection &w, Artifact &a) {
        if (a.id.empty()) a.id = new_ulid_string();
        const int64_t at = a.created_at ? a.created_at : now_us();
        if (a.parent_id) {
            in_savepoint(w, [&] { save(w, a.id, a.data_json, a.parent_id, a.tags_json, at); });
        } else {
            Stmt s(w, kInsertArtifact);
            s.bind(1, std::string_view(a.id)).bind_null(2).bind(3, int64_t{0});
            s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, at).run();
        }
        return a.id;
    }

    // Level of an existing parent, or StoreError(invalid) naming it.
    static int parent_level(Connection &w, const std::string &parent_id) {
        Stmt s(w, kArtifactLevel);
        s.bind(1, std::string_view(parent_id));
        if (!s.step()) invalid("parent artifact " + parent_id + " does not exist");
        return static_cast<int>(s.i64(0));
    }

    static void check_no_cycle(Connection &w, const std::string &id, const std::string &parent_id) {
        if (parent_id == id) invalid("artifact " + id + " cannot be its own parent");
        Stmt s(w, kIsAncestor);
        s.bind(1, std::string_view(parent_id)).bind(2, std::string_view(id));
        if (s.step())
            invalid("artifact " + parent_id + " cannot be the parent of " + id + ": it is one of its descendants");
    }

    static void cascade(Connection &w, const std::string &id, int level) {
        Stmt(w, kCascadeLevels).bind(1, std::string_view(id)).bind(2, static_cast<int64_t>(level)).run();
    }

    struct Existing {
        std::optional<std::string> parent_id;
        int level = 0;
        std::string data, tags;
        int64_t created_at = 0;
    };
    static std::optional<Existing> load_for_write(Connection &w, const std::string &id, bool with_content) {
        Stmt s(w, kArtifactForWrite);
        s.bind(1, std::string_view(id));
        if (!s.step()) return std::nullopt;
        Existing e;
        e.parent_id = s.opt_text(0);
        e.level = static_cast<int>(s.i64(1));
        if (with_content) {
            e.data = s.text(2);
            e.tags = s.text(3);
        }
        e.created_at = s.i64(4);
        return e;
    }

    // Create, or replace the content of an existing id (created_at kept).
    static Artifact save(Connection &w, const std::string &id, const std::string &data,
                         const std::optional<std::string> &parent_id, const std::optional<std::string> &tags,
                         int64_t now) {
        Artifact a;
        a.id = id;
        a.parent_id = parent_id;
        a.level = parent_id ? parent_level(w, *parent_id) + 1 : 0;
        a.data_json = data;
        if (tags) a.tags_json = *tags;
        a.created_at = a.updated_at = now;

        if (auto old = load_for_write(w, id, false)) {
            if (parent_id) check_no_cycle(w, id, *parent_id);
            a.created_at = old->created_at;
            Stmt s(w, kUpdateArtifact);
            s.bind(1, std::string_view(id)).bind(2, a.parent_id).bind(3, static_cast<int64_t>(a.level));
            s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, now).run();
            if (old->parent_id != a.parent_id || old->level != a.level) cascade(w, id, a.level);
        } else {
            Stmt s(w, kInsertArtifact);
            s.bind(1, std::string_view(id)).bind(2, a.parent_id).bind(3, static_cast<int64_t>(a.level));
            s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, now).run();
        }
        return a;
    }

    static std::optional<Artifact> update(Connection &w, const std::string &id, const ArtifactInput &in) {
        auto old = load_for_write(w, id, true);
        if (!old) return std::nullopt;
        Artifact a;
        a.id = id;
        a.parent_id = in.parent_id ? in.parent_id : old->parent_id;
        if (in.parent_id) check_no_cycle(w, id, *in.parent_id);
        a.level = a.parent_id ? parent_level(w, *a.parent_id) + 1 : 0;
        a.data_json = in.data_json ? *in.data_json : std::move(old->data);
        a.tags_json = in.tags_json ? *in.tags_json : std::move(old->tags);
        a.created_at = old->created_at;
        a.updated_at = now_us();
        Stmt s(w, kUpdateArtifact);
        s.bind(1, std::string_view(id)).bind(2, a.parent_id).bind(3, static_cast<int64_t>(a.level));
        s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, a.updated_at).run();
        if (old->parent_id != a.parent_id || old->level != a.level) cascade(w, id, a.level);
        return a;
    }
};

// ---- Store --------------------------------------------------------------------

SqliteStore::SqliteStore(Options options) : impl_(std::make_unique<Impl>()) {
    Impl &m = *impl_;
    m.options = std::move(options);
    if (m.options.path == ":memory:") {
        // memdb VFS: a "/name" is shared by every connection of this process
        // that opens it, and vanishes with the last one. One name per Store.
        m.memory = true;
        m.open_name = "file:/taskhost-" + new_ulid_string() + "?vfs=memdb";
        m.url = "sqlite://:memory:";
    } else {
        std::error_code ec;
        auto abs = std::filesystem::absolute(m.options.path, ec);
        m.open_name = ec ? m.options.path : abs.lexically_normal().string();
        m.url = "sqlite:///" + m.open_name;
    }
    m.writer_conn = std::make_unique<Connection>(m.open_name, m.memory, Connection::Role::writer);
    detail::migrate(*m.writer_conn);
    m.batch.reserve(m.options.max_batch);
    m.queue.reserve(m.options.max_batch);
    for (size_t i = 0; i < m.options.read_connections; ++i)
        m.pool.push_back(std::make_unique<Connection>(m.open_name, m.memory, Connection::Role::reader));
    if (!m.memory) m.start_checkpoints();  // memdb has no WAL
    m.writer = std::thread([&m] { m.writer_main(); });
}

SqliteStore::~SqliteStore() {
    {
        std::lock_guard lock(impl_->q_mu);
        impl_->stopping = true;
        impl_->q_cv.notify_one();
    }
    impl_->writer.join();
    impl_->stop_checkpointer();
}

const std::string &SqliteStore::url() const { return impl_->url; }

Result<void> SqliteStore::check() const {
    try {
        Impl::Lease lease(*impl_);
        Stmt s(*lease, kSelectOne);
        if (!s.step() || s.i64(0) != 1) return fail(ErrorKind::internal, "SELECT 1 returned no row");
    } catch (const std::exception &e) {
        return fail(ErrorKind::internal, e.what());
    }
    const std::string failure = impl_->write_failure();
    if (failure.empty()) return {};
    // The last commit failed (disk full, I/O error…). Queue one small commit
    // that writes (unless one is queued), so that the check turns healthy on
    // a later call once commits work again, with or without traffic. Never
    // waited for here: a wedged disk must not hold health checks.
    if (!impl_->probe_pending.exchange(true)) {
        impl_->post(Probe{});
    }
    return fail(ErrorKind::unavailable, "the last commit failed: " + failure);
}

// ---- job writes ----

void SqliteStore::insert_job(const Job &job) { impl_->call(InsertJob{&job}); }

void SqliteStore::mark_running(const std::string &id, int64_t started_at) { impl_->post(MarkRunning{id, started_at}); }

void SqliteStore::update_progress(const std::string &id, double fraction, const std::string &message) {
    impl_->post(UpdateProgress{id, fraction, message});
}

void SqliteStore::finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable,
                             std::function<void(const std::string &)> on_failed) {
    impl_->post(FinishJob{id, std::make_unique<FinishJob::Data>(
                                  FinishJob::Data{std::move(end), std::move(on_durable), std::move(on_failed)})});
}

bool SqliteStore::delete_job(const std::string &id) {
    bool deleted = false;
    impl_->call(DeleteJob{&id, &deleted});
    return deleted;
}

void SqliteStore::flush() { impl_->call(Flush{}); }

size_t SqliteStore::pending_writes() const {
    std::lock_guard lock(impl_->q_mu);
    return impl_->queue.size();
}

Store::WriteStats SqliteStore::write_stats() const {
    return {impl_->commits.load(std::memory_order_relaxed), impl_->writes.load(std::memory_order_relaxed),
            impl_->coalesced.load(std::memory_order_relaxed), impl_->checkpoints.load(std::memory_order_relaxed),
            impl_->writer_checkpoints.load(std::memory_order_relaxed)};
}

// ---- job reads ----

std::optional<Job> SqliteStore::get_job(const std::string &id) const {
    Impl::Lease lease(*impl_);
    Stmt s(*lease, kGetJob);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    return read_job(s);
}

std::vector<Job> SqliteStore::list_jobs(std::optional<JobStatus> status, size_t limit, size_t offset) const {
    std::vector<Job> out;
    Impl::Lease lease(*impl_);
    Stmt s(*lease, status ? kListJobsByStatus : kListJobs);
    s.bind(1, sql_count(limit)).bind(2, sql_count(offset));
    if (status) s.bind(3, to_string(*status));
    while (s.step()) out.push_back(read_job(s));
    return out;
}

size_t SqliteStore::count_jobs(std::optional<JobStatus> status) const {
    Impl::Lease lease(*impl_);
    Stmt s(*lease, status ? kCountJobsByStatus : kCountJobs);
    if (status) s.bind(1, to_string(*status));
    return s.step() ? static_cast<size_t>(s.i64(0)) : 0;
}

std::vector<Job> SqliteStore::recover(const std::string &running_error, int64_t now) {
    std::vector<Job> pending;
    impl_->call(Recover{&running_error, now, &pending});
    return pending;
}

// ---- artifacts ----

Artifact SqliteStore::save_artifact(const ArtifactInput &input) {
    if (!input.data_json) invalid("data is required");
    Artifact saved;
    impl_->call(SaveArtifact{&input, &saved});
    return saved;
}

std::optional<Artifact> SqliteStore::update_artifact(const std::string &id, const ArtifactInput &input) {
    std::optional<Artifact> updated;
    impl_->call(UpdateArtifact{&id, &input, &updated});
    return updated;
}

bool SqliteStore::delete_artifact(const std::string &id) {
    bool deleted = false;
    impl_->call(DeleteArtifact{&id, &deleted});
    return deleted;
}

std::optional<Artifact> SqliteStore::get_artifact(const std::string &id) const {
    Impl::Lease lease(*impl_);
    Stmt s(*lease, kGetArtifact);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    return read_artifact(s);
}

std::vector<Artifact> SqliteStore::list_artifacts(size_t limit, size_t offset) const {
    std::vector<Artifact> out;
    Impl::Lease lease(*impl_);
    Stmt s(*lease, kListArtifacts);
    s.bind(1, sql_count(limit)).bind(2, sql_count(offset));
    while (s.step()) out.push_back(read_artifact(s));
    return out;
}

size_t SqliteStore::count_artifacts() const {
    Impl::Lease lease(*impl_);
    Stmt s(*lease, kCountArtifacts);
    return s.step() ? static_cast<size_t>(s.i64(0)) : 0;
}

std::vector<Artifact> SqliteStore::artifact_subtree(const std::string &root_id) const {
    std::vector<Artifact> out;
    Impl::Lease lease(*impl_);
    Stmt s(*lease, kSubtree);
    s.bind(1, std::string_view(root_id));
    while (s.step()) out.push_back(read_artifact(s));
    return out;
}

std::unique_ptr<TaskConnection> SqliteStore::task_connection() {
    return detail::make_task_connection(impl_->open_name, impl_->memory);
}

}  // namespace taskhost::store
