// The fleet's store: PostgreSQL (--db postgresql://…). The same contract as
// the embedded store: one writer thread commits queued writes in groups
// (one transaction per batch; under --sync full, the default, a write a
// caller waited for is on the server's disk: synchronous_commit on), and
// reads use a small pool of connections of their own.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace taskhost::store {

class PostgresStore final : public Store {
public:
    struct Options {
        std::string url;  // postgresql://user@host:port/db (libpq's URI or key=value form)
        size_t max_batch = 1024;     // writes per transaction at most
        size_t read_connections = 8;  // kept open; more open while all are busy
        // false: the schema must already be current (`taskhost migrate`).
        bool migrate = true;
        // This host in the fleet: the jobs it runs carry it. The same id
        // after a restart lets the host fail its own interrupted jobs at
        // once; empty: a fresh one (hostname, pid, time).
        std::string host_id;
        // A running job's lease, renewed every third of it: a host not
        // heard of for this long is lost, and its running jobs fail.
        double lease_s = 30;
        // --sync full (true): every connection's commits wait for the
        // server's WAL flush (synchronous_commit raised to on where it is
        // off); normal: the writer's do not (off), and the last of them may
        // be lost if the server itself crashes.
        bool sync_full = true;
        // Failures of the writes nobody waits for; stderr when empty.
        std::function<void(const std::string &)> on_write_error;
    };

    // Connects and migrates (or checks the schema). Throws StoreError.
    explicit PostgresStore(Options options);
    ~PostgresStore() override;  // drains pending writes, then closes
    PostgresStore(const PostgresStore &) = delete;
    PostgresStore &operator=(const PostgresStore &) = delete;

    // Brings the schema of the database at `url` to this build's version;
    // returns the version it found. Throws StoreError.
    static int migrate(const std::string &url);
    static int schema_version();  // this build's

    const std::string &url() const override;
    const char *sync() const override;
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
    void flush_final() override;
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
    bool shared() const override { return true; }
    void listen(FleetEvents events) override;
    std::vector<model::Job> claim_pending(const std::vector<Runnable> &runnable, size_t limit) override;
    void offer_job(const model::Job &job) override;
    void release_pending(const std::vector<std::string> &ids) override;
    std::vector<model::Job> held_pending() const override;
    bool cancel_pending(const std::string &id, int64_t now) override;
    void ask_cancel(const std::string &id) override;

    std::unique_ptr<TaskConnection> task_connection() override;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Whether `db` names a PostgreSQL database (postgresql:// or postgres://).
bool is_postgres_url(const std::string &db);

}  // namespace taskhost::store
