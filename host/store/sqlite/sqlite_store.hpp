// The embedded store: one SQLite file in WAL mode, or ":memory:" (SQLite's
// shared in-process memdb VFS, so every connection sees the same data).
//
// One writer thread owns the write connection and commits queued writes in
// groups (one transaction per batch), so durability does not cost one fsync
// per request. Reads use a small pool of read connections (WAL lets them run
// beside the writer).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace taskhost::store {

class SqliteStore final : public Store {
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
        // false: the schema must already be current (`taskhost migrate`).
        bool migrate = true;
        bool background_checkpoints = true;  // false: the writer alone, at wal_cap_pages (tests)
        // --sync full (true): no commit returns, and so no write is
        // acknowledged, before the WAL holding it was fsync'd; normal
        // (false): commits survive a crash of the host, not of the OS.
        bool sync_full = true;
        // Failures of the writes nobody waits for (update_progress,
        // finish_job). Runs on the writer thread; when empty the message
        // goes to stderr.
        std::function<void(const std::string &)> on_write_error;
    };

    explicit SqliteStore(Options options);
    ~SqliteStore() override;  // drains pending writes, then closes
    SqliteStore(const SqliteStore &) = delete;
    SqliteStore &operator=(const SqliteStore &) = delete;

    // Brings the schema of the database file at `path` to this build's
    // version; returns the version it found. Throws StoreError.
    static int migrate(const std::string &path);
    static int schema_version();  // this build's

    const std::string &url() const override;
    const char *sync() const override;
    // Runs a trivial query on a read connection; while the last commit has
    // failed, queues one small commit that writes (never waited for) and
    // reports the failure, so the check turns healthy once commits work.
    Result<void> check() const override;

    void insert_job(const model::Job &job) override;
    bool insert_keyed_job(const model::Job &job, int64_t reusable_before, bool for_any_host = false) override;
    bool start_job(const std::string &id, int64_t started_at) override;
    void update_progress(const std::string &id, double fraction, const std::string &message) override;
    void job_due(const std::string &id) override;
    void finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable = {},
                    std::function<void(const std::string &)> on_failed = {}) override;
    bool delete_job(const std::string &id) override;
    Pruned prune_jobs(int64_t finished_before, std::optional<model::JobStatus> status, size_t limit,
                      int64_t keep_keyed_since) override;
    int64_t finished_at_of_newest(size_t n) const override;
    void flush() override;
    size_t pending_writes() const override;
    WriteStats write_stats() const override;

    std::optional<model::Job> get_job(const std::string &id) const override;
    std::optional<model::Job> find_keyed_job(const std::string &key, int64_t submitted_from) const override;
    std::vector<model::Job> list_jobs(std::optional<model::JobStatus> status, size_t limit,
                                      size_t offset) const override;
    size_t count_jobs(std::optional<model::JobStatus> status) const override;
    std::vector<model::Job> recover(const std::string &running_error, int64_t now) override;
    void fail_jobs(const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) override;

    model::PluginFaults record_plugin_fault(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                            const std::string &reason, const model::QuarantineThresholds &thresholds,
                                            int64_t now) override;
    std::vector<model::PluginFaults> quarantined_plugins() const override;

    model::Artifact save_artifact(const model::ArtifactInput &input) override;
    std::optional<model::Artifact> update_artifact(const std::string &id, const model::ArtifactInput &input) override;
    bool delete_artifact(const std::string &id) override;
    std::optional<model::Artifact> get_artifact(const std::string &id) const override;
    std::vector<model::Artifact> list_artifacts(size_t limit, size_t offset) const override;
    size_t count_artifacts() const override;
    std::vector<model::Artifact> artifact_subtree(const std::string &root_id) const override;

    bool insert_schedule(const model::Schedule &schedule) override;
    bool update_schedule(const model::Schedule &schedule, bool set_next_run) override;
    bool delete_schedule(const std::string &id) override;
    bool record_schedule_run(const std::string &id, const model::ScheduleRun &run, std::optional<int64_t> fired,
                             int64_t next_run_at) override;
    std::optional<model::Schedule> get_schedule(const std::string &id) const override;
    std::vector<model::Schedule> list_schedules() const override;

    void describe_host(const std::string &address, const std::string &version, const std::string &plugins_json,
                       const std::string &tasks_json) override;
    std::vector<HostRecord> hosts() const override;
    std::string describing_host() const override;

    std::unique_ptr<TaskConnection> task_connection() override;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::store
