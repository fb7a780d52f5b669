// SqliteStore: the write connection and its writer thread (write_queue,
// committer), the WAL checkpointer, and the read pool, put together.
#include "store/sqlite/sqlite_store.hpp"

#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <utility>

#include "store/report.hpp"
#include "store/sqlite/artifact_sql.hpp"
#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/committer.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/job_sql.hpp"
#include "store/sqlite/plugin_fault_sql.hpp"
#include "store/sqlite/read_pool.hpp"
#include "store/sqlite/schedule_sql.hpp"
#include "store/sqlite/schema.hpp"
#include "store/write_queue.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

namespace taskhost::store {

using model::Artifact;
using model::ArtifactInput;
using model::Job;
using model::JobStatus;
using namespace sqlite;

namespace {

constexpr char kSelectOne[] = "SELECT 1";

struct Location {
    std::string url;
    std::string open_name;  // file path, or the memdb URI
    bool memory = false;
};

Location locate(const std::string &path) {
    Location location;
    if (path == ":memory:") {
        // memdb VFS: a "/name" is shared by every connection of this process
        // that opens it, and vanishes with the last one. One name per Store.
        location.memory = true;
        location.open_name = "file:/taskhost-" + new_ulid_string() + "?vfs=memdb";
        location.url = "sqlite://:memory:";
    } else {
        std::error_code ec;
        auto abs = std::filesystem::absolute(path, ec);
        location.open_name = ec ? path : abs.lexically_normal().string();
        location.url = "sqlite:///" + location.open_name;
    }
    return location;
}

// The write connection, its schema brought up to date before any other
// connection opens.
std::unique_ptr<Connection> open_writer(const Location &location, bool migrate_schema, bool sync_full) {
    auto conn = std::make_unique<Connection>(location.open_name, location.memory, Connection::Role::writer, sync_full);
    // A memory database starts empty: there is nothing an operator could
    // have migrated beforehand.
    if (migrate_schema || location.memory) migrate(*conn);
    else require_current_schema(*conn);
    return conn;
}

}  // namespace

// Members in construction order; destroyed in reverse, so the writer thread
// drains the queue first and the write connection closes last.
struct SqliteStore::Impl {
    explicit Impl(Options options)
        : location(locate(options.path)),
          sync_full(options.sync_full),
          report(std::move(options.on_write_error)),
          writer(open_writer(location, options.migrate, options.sync_full)),
          reads(location.open_name, location.memory, options.read_connections),
          checkpointer(location.memory ? nullptr  // memdb has no WAL
                                       : std::make_unique<Checkpointer>(
                                             *writer, location.open_name,
                                             Checkpointer::Settings{options.checkpoint_pages, options.wal_cap_pages,
                                                                    options.background_checkpoints},
                                             *health, report)),
          committer(*writer, reads.gate(), checkpointer.get(), *health, report),
          queue(committer, report, options.max_batch) {}

    const Location location;
    const bool sync_full;  // Options::sync_full
    const Reporter report;
    // Whether commits work; the checkpointer's and task connections' fsyncs
    // count too. Shared: a task connection may outlive the store.
    const std::shared_ptr<CommitHealth> health = std::make_shared<CommitHealth>();
    const std::unique_ptr<Connection> writer;  // the writer thread's, once it runs
    // Closed just before the writer: SQLite checkpoints when the last
    // connection closes, which after an fsync failed it must not.
    struct NoCheckpointOnCloseIfLatched {
        const Connection &conn;
        const CommitHealth &health;
        ~NoCheckpointOnCloseIfLatched() {
            if (health.latched()) sqlite3_db_config(conn.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        }
    } no_checkpoint_on_close{*writer, *health};
    ReadPool reads;
    const std::unique_ptr<Checkpointer> checkpointer;
    Committer committer;
    WriteQueue queue;

    mutable std::mutex host_mu;
    HostRecord host;  // this one, the only one (guarded by host_mu)
};

SqliteStore::SqliteStore(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

SqliteStore::~SqliteStore() = default;

int SqliteStore::migrate(const std::string &path) {
    const Location location = locate(path);
    Connection conn(location.open_name, location.memory, Connection::Role::writer);
    return sqlite::migrate(conn);
}

int SqliteStore::schema_version() { return kSchemaVersion; }

const std::string &SqliteStore::url() const { return impl_->location.url; }

const char *SqliteStore::sync() const {
    if (impl_->location.memory) return "none";
    return impl_->sync_full ? "full" : "normal";
}

Result<void> SqliteStore::check() const {
    try {
        ReadPool::Lease lease(impl_->reads);
        Stmt s(*lease, kSelectOne);
        if (!s.step() || s.i64(0) != 1) return fail(ErrorKind::internal, "SELECT 1 returned no row");
    } catch (const std::exception &e) {
        return fail(ErrorKind::internal, e.what());
    }
    const std::string failure = impl_->health->failure();
    if (failure.empty()) return {};
    // The last commit failed (disk full, I/O error…). Queue one small commit
    // that writes (unless one is queued), so that the check turns healthy on
    // a later call once commits work again, with or without traffic. Never
    // waited for here: a wedged disk must not hold health checks.
    if (impl_->health->want_probe()) impl_->queue.post(Probe{});
    return fail(ErrorKind::unavailable, "the last commit failed: " + failure);
}

// ---- job writes ----

void SqliteStore::insert_job(const Job &job) { impl_->queue.call(InsertJob{&job}); }

bool SqliteStore::insert_keyed_job(const Job &job, int64_t reusable_before, bool /*for_any_host*/) {
    bool inserted = false;
    impl_->queue.call(InsertJob{&job, false, reusable_before, &inserted});
    return inserted;
}

bool SqliteStore::start_job(const std::string &id, int64_t started_at) {
    bool started = false;
    impl_->queue.call(StartJob{&id, started_at, &started});
    return started;
}

void SqliteStore::job_due(const std::string &id) { impl_->queue.post(JobDue{id}); }

void SqliteStore::update_progress(const std::string &id, double fraction, const std::string &message) {
    impl_->queue.post(UpdateProgress{id, fraction, message});
}

void SqliteStore::finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable,
                             std::function<void(const std::string &)> on_failed) {
    impl_->queue.post(FinishJob{id, std::make_unique<FinishJob::Data>(
                                        FinishJob::Data{std::move(end), std::move(on_durable), std::move(on_failed)})});
}

bool SqliteStore::delete_job(const std::string &id) {
    bool deleted = false;
    impl_->queue.call(DeleteJob{&id, &deleted});
    return deleted;
}

void SqliteStore::flush() { impl_->queue.flush(); }

size_t SqliteStore::pending_writes() const { return impl_->queue.pending(); }

Store::WriteStats SqliteStore::write_stats() const {
    const Impl &m = *impl_;
    return {m.committer.commits(), m.committer.writes(),
            m.checkpointer ? m.checkpointer->checkpoints() : 0,
            m.checkpointer ? m.checkpointer->writer_checkpoints() : 0};
}

std::vector<Job> SqliteStore::recover(const std::string &running_error, int64_t now) {
    std::vector<Job> pending;
    impl_->queue.call(Recover{&running_error, now, &pending});
    return pending;
}

void SqliteStore::fail_jobs(const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) {
    if (!errors.empty()) impl_->queue.call(FailJobs{&errors, now});
}

// ---- schedules ----

bool SqliteStore::insert_schedule(const model::Schedule &schedule) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::insert, &schedule, nullptr, nullptr, {}, 0, &done});
    return done;
}

bool SqliteStore::update_schedule(const model::Schedule &schedule, bool set_next_run) {
    bool done = false;
    impl_->queue.call(
        WriteSchedule{WriteSchedule::Kind::update, &schedule, nullptr, nullptr, {}, 0, &done, set_next_run});
    return done;
}

bool SqliteStore::delete_schedule(const std::string &id) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::remove, nullptr, &id, nullptr, {}, 0, &done});
    return done;
}

bool SqliteStore::record_schedule_run(const std::string &id, const model::ScheduleRun &run,
                                      std::optional<int64_t> fired, int64_t next_run_at) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::record_run, nullptr, &id, &run, fired, next_run_at, &done});
    return done;
}

std::optional<model::Schedule> SqliteStore::get_schedule(const std::string &id) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::get_schedule(*lease, id);
}

std::vector<model::Schedule> SqliteStore::list_schedules() const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::list_schedules(*lease);
}

// ---- plugin faults ----

model::PluginFaults SqliteStore::record_plugin_fault(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                                     const std::string &reason,
                                                     const model::QuarantineThresholds &thresholds, int64_t now) {
    model::PluginFaults after;
    impl_->queue.call(RecordPluginFault{&plugin, kind, &reason, &thresholds, now, &after});
    return after;
}

std::vector<model::PluginFaults> SqliteStore::quarantined_plugins() const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::quarantined_plugins(*lease);
}

// ---- job reads ----

std::optional<Job> SqliteStore::get_job(const std::string &id) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::get_job(*lease, id);
}

std::optional<Job> SqliteStore::find_keyed_job(const std::string &key, int64_t submitted_from) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::find_keyed_job(*lease, key, submitted_from);
}

std::vector<Job> SqliteStore::list_jobs(std::optional<JobStatus> status, size_t limit, size_t offset) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::list_jobs(*lease, status, limit, offset);
}

Store::Pruned SqliteStore::prune_jobs(int64_t finished_before, std::optional<JobStatus> status, size_t limit,
                                      int64_t keep_keyed_since) {
    Pruned pruned;
    impl_->queue.call(PruneJobs{finished_before, status, limit, keep_keyed_since, &pruned});
    return pruned;
}

int64_t SqliteStore::finished_at_of_newest(size_t n) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::finished_at_of_newest(*lease, n);
}

size_t SqliteStore::count_jobs(std::optional<JobStatus> status) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::count_jobs(*lease, status);
}

// ---- artifact writes ----

Artifact SqliteStore::save_artifact(const ArtifactInput &input) {
    if (!input.data_json) throw StoreError(StoreError::Kind::invalid, "data is required");
    Artifact saved;
    impl_->queue.call(SaveArtifact{&input, &saved});
    return saved;
}

std::optional<Artifact> SqliteStore::update_artifact(const std::string &id, const ArtifactInput &input) {
    std::optional<Artifact> updated;
    impl_->queue.call(UpdateArtifact{&id, &input, &updated});
    return updated;
}

bool SqliteStore::delete_artifact(const std::string &id) {
    bool deleted = false;
    impl_->queue.call(DeleteArtifact{&id, &deleted});
    return deleted;
}

// ---- artifact reads ----

std::optional<Artifact> SqliteStore::get_artifact(const std::string &id) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::get_artifact(*lease, id);
}

std::vector<Artifact> SqliteStore::list_artifacts(size_t limit, size_t offset) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::list_artifacts(*lease, limit, offset);
}

size_t SqliteStore::count_artifacts() const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::count_artifacts(*lease);
}

std::vector<Artifact> SqliteStore::artifact_subtree(const std::string &root_id) const {
    ReadPool::Lease lease(impl_->reads);
    return sqlite::artifact_subtree(*lease, root_id);
}

void SqliteStore::describe_host(const std::string &address, const std::string &version, const std::string &plugins_json,
                                const std::string &tasks_json) {
    std::lock_guard lock(impl_->host_mu);
    HostRecord &h = impl_->host;
    if (!h.started_at) h.started_at = now_us();
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    h.id = name;
    h.address = address;
    h.version = version;
    h.plugins_json = plugins_json;
    h.tasks_json = tasks_json;
}

std::vector<Store::HostRecord> SqliteStore::hosts() const {
    std::lock_guard lock(impl_->host_mu);
    if (impl_->host.id.empty()) return {};
    HostRecord h = impl_->host;
    h.heartbeat_at = now_us();  // it is the one answering
    return {h};
}

std::string SqliteStore::describing_host() const {
    std::lock_guard lock(impl_->host_mu);
    return impl_->host.id;
}

std::unique_ptr<TaskConnection> SqliteStore::task_connection() {
    return make_task_connection(impl_->location.open_name, impl_->location.memory, impl_->sync_full, impl_->health);
}

}  // namespace taskhost::store
