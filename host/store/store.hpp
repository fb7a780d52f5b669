// SQLite persistence for jobs and artifacts.
//
// One writer thread owns the write connection and commits queued writes in
// groups (one transaction per batch), so durability does not cost one fsync
// per request. Reads use a small pool of read connections (WAL lets them run
// beside the writer). ":memory:" uses SQLite's shared in-process memdb VFS so
// every connection sees the same database.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/artifact.hpp"
#include "model/job.hpp"

namespace taskhost::store {

struct StoreError : std::runtime_error {
    enum class Kind { not_found, invalid, internal };
    Kind kind;
    StoreError(Kind k, const std::string &what) : std::runtime_error(what), kind(k) {}
};

// A connection lent to task code (the Database / Session services).
class TaskConnection {
public:
    virtual ~TaskConnection() = default;
    // Runs one statement with positional binds (params_json: JSON array or
    // empty). Returns rows as a JSON array of objects. Throws StoreError
    // (invalid) with SQLite's message on failure.
    virtual std::string query(const std::string &sql, const std::string &params_json) = 0;
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() = 0;
    virtual bool in_transaction() const = 0;
};

class Store {
public:
    struct Options {
        std::string path = ":memory:";  // file path or ":memory:"
        size_t max_batch = 1024;        // writes per transaction at most
        size_t read_connections = 8;    // pool size (grows if all are busy)
        // File databases: a background connection checkpoints the WAL each
        // time this many pages were appended since its last checkpoint, so
        // commits do not wait for a checkpoint's copying and fsyncs.
        size_t checkpoint_pages = 1000;
        // A WAL restarts from its start only after a checkpoint that caught
        // up with every commit, which a background one never does under
        // steady load. From this size on, the writer checkpoints what is
        // left itself, between two commits, whenever the background one is
        // not running: usually only the last few frames are left, so the
        // commit that waits for it waits briefly, and the WAL stays bounded.
        size_t wal_cap_pages = 10000;
        bool background_checkpoints = true;  // false: the writer alone, at wal_cap_pages (tests)
        // Failures of the writes nobody waits for (mark_running,
        // update_progress, finish_job). Runs on the writer thread; when
        // empty the message goes to stderr.
        std::function<void(const std::string &)> on_write_error;
    };

    // `limit` for list_jobs / list_artifacts meaning "no limit" (0 means 0).
    static constexpr size_t no_limit = static_cast<size_t>(-1);

    explicit Store(Options options);
    ~Store();  // drains pending writes, then closes
    Store(const Store &) = delete;
    Store &operator=(const Store &) = delete;

    const std::string &url() const;  // "sqlite:///abs/path" or "sqlite://:memory:"
    // Runs a trivial query on a read connection, and, if the last commit
    // failed, a commit that writes; false + reason if either fails.
    bool check(std::string *why) const;

    // ---- jobs: writes ----------------------------------------------------
    // Durable (committed) when it returns. Throws StoreError on failure.
    void insert_job(const model::Job &job);
    // Ordered after earlier writes; not waited for. mark_running only moves a
    // `pending` job (a cancel queued before it sticks).
    void mark_running(const std::string &id, int64_t started_at);
    void update_progress(const std::string &id, double fraction, const std::string &message);
    // Stores the result artifact (when given) and the terminal state in one
    // transaction. Not waited for; on_durable runs on the writer thread after
    // the commit (keep it short; it may read the store, but a blocking write
    // from it throws instead of deadlocking). If the artifact cannot be
    // stored (e.g. its parent is gone) the job is stored `failed` with the
    // reason, and on_durable still runs; if the whole transaction fails,
    // on_durable is not called and Options::on_write_error gets the error.
    void finish_job(const std::string &id, model::JobStatus status, int64_t finished_at, std::optional<std::string> error,
                    std::optional<std::string> traceback, std::optional<model::Artifact> result_artifact,
                    std::function<void()> on_durable = {});
    // The same, with the fields of the end in one place.
    struct JobEnd {
        model::JobStatus status = model::JobStatus::completed;
        int64_t started_at = 0;  // stored unless mark_running already did (0: never ran)
        int64_t finished_at = 0;
        std::optional<std::string> error, traceback;
        std::optional<model::Artifact> result_artifact;
        // A job that was never stored (one-request execution): this record is
        // inserted first, in the same transaction.
        std::optional<model::Job> insert_first;
    };
    // `on_failed` runs instead of `on_durable` (on the writer thread too),
    // with the reason, when the write could not be committed.
    void finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable = {},
                    std::function<void(const std::string &)> on_failed = {});
    // Durable when it returns. False if no such job.
    bool delete_job(const std::string &id);
    // Blocks until every write queued before this call is committed and its
    // on_durable callback has returned.
    void flush();
    // Writes queued and not yet taken by the writer (metrics, tests).
    size_t pending_writes() const;
    // Counters since start: transactions committed by the writer, the writes
    // they carried, and writes made redundant by a later one in the same
    // batch (a job's `running` mark when its end is already queued).
    struct WriteStats {
        uint64_t commits = 0, writes = 0, coalesced = 0;
        // WAL checkpoints by the background connection, and by the writer
        // itself at wal_cap_pages.
        uint64_t checkpoints = 0, writer_checkpoints = 0;
    };
    WriteStats write_stats() const;

    // ---- jobs: reads -----------------------------------------------------
    std::optional<model::Job> get_job(const std::string &id) const;
    // Newest first (submission order reversed).
    std::vector<model::Job> list_jobs(std::optional<model::JobStatus> status, size_t limit, size_t offset) const;
    size_t count_jobs(std::optional<model::JobStatus> status) const;

    // Start-up recovery: every `running` job becomes `failed` with `error`,
    // and the `pending` ones are returned oldest first to be run again.
    std::vector<model::Job> recover(const std::string &running_error, int64_t now);

    // ---- artifacts (durable when they return) ------------------------------
    // Create, or upsert when input.id names an existing artifact. level =
    // parent.level + 1, or 0 without a parent. Throws StoreError: invalid
    // (data missing, parent does not exist, parent would make a cycle).
    model::Artifact save_artifact(const model::ArtifactInput &input);
    // Applies the fields that are set; recomputes level and cascades it to
    // every descendant when parent or level changed. nullopt if absent.
    std::optional<model::Artifact> update_artifact(const std::string &id, const model::ArtifactInput &input);
    // Children keep their level and lose their parent_id. False if absent.
    bool delete_artifact(const std::string &id);

    std::optional<model::Artifact> get_artifact(const std::string &id) const;
    // Insertion order.
    std::vector<model::Artifact> list_artifacts(size_t limit, size_t offset) const;
    size_t count_artifacts() const;
    // The artifact and all its descendants: root first, then in insertion
    // order. Empty if the root does not exist.
    std::vector<model::Artifact> artifact_subtree(const std::string &root_id) const;

    // ---- task code -----------------------------------------------------
    std::unique_ptr<TaskConnection> task_connection();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::store
