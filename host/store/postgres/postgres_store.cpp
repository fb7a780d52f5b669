// PostgresStore: the write connection and its writer thread (write_queue,
// committer) and the read pool, put together.
#include "store/postgres/postgres_store.hpp"

#include <unistd.h>

#include <utility>

#include "store/ops.hpp"
#include "store/postgres/artifact_sql.hpp"
#include "store/postgres/committer.hpp"
#include "store/postgres/connection.hpp"
#include "store/postgres/heartbeat.hpp"
#include "store/postgres/job_sql.hpp"
#include "store/postgres/listener.hpp"
#include "store/postgres/plugin_fault_sql.hpp"
#include "store/postgres/read_pool.hpp"
#include "store/postgres/schedule_sql.hpp"
#include "store/postgres/schema.hpp"
#include "store/postgres/task_connection.hpp"
#include "store/report.hpp"
#include "store/write_queue.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

namespace taskhost::store {

using model::Artifact;
using model::ArtifactInput;
using model::Job;
using model::JobStatus;
using namespace postgres;

namespace {

// The URL without its password (user:password@, or ?password=), for
// logs, /api/v1/system and worker processes' arguments.
std::string redacted(std::string url) {
    for (size_t at = url.find("password="); at != std::string::npos; at = url.find("password=", at + 1)) {
        if (at > 0 && url[at - 1] != '?' && url[at - 1] != '&' && url[at - 1] != ' ') continue;
        const size_t value = at + 9;
        const size_t end = url.find_first_of("& ", value);
        url.replace(value, (end == std::string::npos ? url.size() : end) - value, "***");
    }
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) return url;
    const auto authority = scheme + 3;
    const auto at = url.find('@', authority);
    const auto slash = url.find('/', authority);
    if (at == std::string::npos || (slash != std::string::npos && slash < at)) return url;
    const auto colon = url.find(':', authority);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon + 1) + "***" + url.substr(at);
}

HostLease lease_of(const PostgresStore::Options &options) {
    std::string id = options.host_id;
    if (id.empty()) {
        char name[256] = {};
        ::gethostname(name, sizeof name - 1);
        id = std::string(name) + "-" + std::to_string(::getpid()) + "-" + new_ulid_string().substr(0, 10);
    }
    return {std::move(id), static_cast<int64_t>(options.lease_s * 1e6)};
}

constexpr char kHosts[] =
    "SELECT id, address, version, plugins::text, tasks::text, started_at, heartbeat_at FROM hosts "
    "WHERE heartbeat_at >= " TASKHOST_PG_NOW_US " - $1 ORDER BY id";

std::unique_ptr<Connection> open_writer(const PostgresStore::Options &options) {
    auto conn = std::make_unique<Connection>(options.url, options.sync_full);
    if (options.migrate) postgres::migrate(*conn);
    else require_current_schema(*conn);
    return conn;
}

}  // namespace

bool is_postgres_url(const std::string &db) {
    return db.starts_with("postgresql://") || db.starts_with("postgres://");
}

// Members in construction order; destroyed in reverse, so the writer thread
// drains the queue first and the write connection closes last.
struct PostgresStore::Impl {
    explicit Impl(Options options)
        : url(options.url),
          shown_url(redacted(options.url)),
          sync_full(options.sync_full),
          report(std::move(options.on_write_error)),
          lease(lease_of(options)),
          writer(open_writer(options)),
          reads(options.url, options.read_connections, options.sync_full),
          committer(*writer, lease, report, options.sync_full),
          queue(committer, report, options.max_batch),
          listener(options.url, report),
          heartbeat(
              options.url, options.sync_full, lease, report,
              [this] {
                  // The server answers: kept job ends are written now, not
                  // when the next write comes.
                  if (committer.parked() > 0) queue.post(Probe{});
              },
              [this](const std::string &id) { listener.cancel_asked(id); }) {}

    // Runs fn on a read connection. A connection that broke while idle
    // (the server restarted) fails once: the idle ones go, and the read is
    // tried again on a new one.
    template <class Fn>
    auto read(Fn &&fn) {
        try {
            ReadPool::Lease lease(reads);
            return fn(*lease);
        } catch (const StoreError &e) {
            if (e.kind != StoreError::Kind::unavailable) throw;
        }
        reads.drop_idle();
        ReadPool::Lease lease(reads);
        return fn(*lease);
    }

    const std::string url, shown_url;
    const bool sync_full;  // Options::sync_full
    const Reporter report;
    const HostLease lease;
    const std::unique_ptr<Connection> writer;  // the writer thread's, once it runs
    ReadPool reads;
    Committer committer;
    WriteQueue queue;
    Listener listener;
    Heartbeat heartbeat;  // after the listener: it passes cancels on to it
};

PostgresStore::PostgresStore(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

PostgresStore::~PostgresStore() = default;

int PostgresStore::migrate(const std::string &url) {
    Connection conn(url, /*durable_commits=*/true);
    return postgres::migrate(conn);
}

int PostgresStore::schema_version() { return kSchemaVersion; }

const std::string &PostgresStore::url() const { return impl_->shown_url; }

const char *PostgresStore::sync() const { return impl_->sync_full ? "full" : "normal"; }

Result<void> PostgresStore::check() const {
    const size_t parked = impl_->committer.parked();
    const std::string kept =
        parked ? " (" + std::to_string(parked) + " job end(s) kept until the database is back)" : "";
    try {
        Rows r = impl_->read([](Connection &c) { return c.run("SELECT 1"); });
        if (!r.size() || r.i64(0, 0) != 1) return fail(ErrorKind::internal, "SELECT 1 returned no row");
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, e.what() + kept);
    }
    const std::string failure = impl_->committer.health().failure();
    if (failure.empty()) return {};
    // The last commit failed: queue one small commit (never waited for
    // here), so the check turns healthy once commits work again.
    if (impl_->committer.health().want_probe()) impl_->queue.post(Probe{});
    return fail(ErrorKind::unavailable, "the last commit failed: " + failure + kept);
}

// ---- job writes ----

void PostgresStore::insert_job(const Job &job) { impl_->queue.call(InsertJob{&job}); }

void PostgresStore::offer_job(const Job &job) { impl_->queue.call(InsertJob{&job, /*for_any_host=*/true}); }

bool PostgresStore::insert_keyed_job(const Job &job, int64_t reusable_before, bool for_any_host) {
    bool inserted = false;
    impl_->queue.call(InsertJob{&job, for_any_host, reusable_before, &inserted});
    return inserted;
}

bool PostgresStore::start_job(const std::string &id, int64_t started_at) {
    bool started = false;
    impl_->queue.call(StartJob{&id, started_at, &started});
    return started;
}

void PostgresStore::job_due(const std::string &id) { impl_->queue.post(JobDue{id}); }

void PostgresStore::update_progress(const std::string &id, double fraction, const std::string &message) {
    impl_->queue.post(UpdateProgress{id, fraction, message});
}

void PostgresStore::finish_job(const std::string &id, JobEnd end, std::function<void()> on_durable,
                               std::function<void(const std::string &)> on_failed) {
    impl_->queue.post(FinishJob{id, std::make_unique<FinishJob::Data>(
                                        FinishJob::Data{std::move(end), std::move(on_durable), std::move(on_failed)})});
}

bool PostgresStore::delete_job(const std::string &id) {
    bool deleted = false;
    impl_->queue.call(DeleteJob{&id, &deleted});
    return deleted;
}

void PostgresStore::flush() { impl_->queue.flush(); }

void PostgresStore::flush_final() { impl_->queue.call(Flush{true}); }

size_t PostgresStore::pending_writes() const { return impl_->queue.pending(); }

Store::WriteStats PostgresStore::write_stats() const {
    return {impl_->committer.commits(), impl_->committer.writes(), 0, 0};
}

std::vector<Job> PostgresStore::recover(const std::string &running_error, int64_t now) {
    std::vector<Job> pending;
    impl_->queue.call(Recover{&running_error, now, &pending});
    return pending;
}

void PostgresStore::fail_jobs(const std::vector<std::pair<std::string, std::string>> &errors, int64_t now) {
    if (!errors.empty()) impl_->queue.call(FailJobs{&errors, now});
}

// ---- schedules ----

bool PostgresStore::insert_schedule(const model::Schedule &schedule) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::insert, &schedule, nullptr, nullptr, {}, 0, &done});
    return done;
}

bool PostgresStore::update_schedule(const model::Schedule &schedule, bool set_next_run) {
    bool done = false;
    impl_->queue.call(
        WriteSchedule{WriteSchedule::Kind::update, &schedule, nullptr, nullptr, {}, 0, &done, set_next_run});
    return done;
}

bool PostgresStore::delete_schedule(const std::string &id) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::remove, nullptr, &id, nullptr, {}, 0, &done});
    return done;
}

bool PostgresStore::record_schedule_run(const std::string &id, const model::ScheduleRun &run,
                                        std::optional<int64_t> fired, int64_t next_run_at) {
    bool done = false;
    impl_->queue.call(WriteSchedule{WriteSchedule::Kind::record_run, nullptr, &id, &run, fired, next_run_at, &done});
    return done;
}

std::optional<model::Schedule> PostgresStore::get_schedule(const std::string &id) const {
    return impl_->read([&](Connection &c) { return postgres::get_schedule(c, id); });
}

std::vector<model::Schedule> PostgresStore::list_schedules() const {
    return impl_->read([](Connection &c) { return postgres::list_schedules(c); });
}

// ---- plugin faults ----

model::PluginFaults PostgresStore::record_plugin_fault(const model::PluginFaults &plugin,
                                                       model::PluginFaultKind kind, const std::string &reason,
                                                       const model::QuarantineThresholds &thresholds, int64_t now) {
    model::PluginFaults after;
    impl_->queue.call(RecordPluginFault{&plugin, kind, &reason, &thresholds, now, &after});
    return after;
}

std::vector<model::PluginFaults> PostgresStore::quarantined_plugins() const {
    return impl_->read([](Connection &c) { return postgres::quarantined_plugins(c); });
}

// ---- job reads ----

std::optional<Job> PostgresStore::get_job(const std::string &id) const {
    return impl_->read([&](Connection &c) { return postgres::get_job(c, id); });
}

std::optional<Job> PostgresStore::find_keyed_job(const std::string &key, int64_t submitted_from) const {
    return impl_->read([&](Connection &c) { return postgres::find_keyed_job(c, key, submitted_from); });
}

std::vector<Job> PostgresStore::list_jobs(std::optional<JobStatus> status, size_t limit, size_t offset) const {
    return impl_->read([&](Connection &c) { return postgres::list_jobs(c, status, limit, offset); });
}

Store::Pruned PostgresStore::prune_jobs(int64_t finished_before, std::optional<JobStatus> status, size_t limit,
                                        int64_t keep_keyed_since) {
    Pruned pruned;
    impl_->queue.call(PruneJobs{finished_before, status, limit, keep_keyed_since, &pruned});
    return pruned;
}

int64_t PostgresStore::finished_at_of_newest(size_t n) const {
    return impl_->read([&](Connection &c) { return postgres::finished_at_of_newest(c, n); });
}

size_t PostgresStore::count_jobs(std::optional<JobStatus> status) const {
    return impl_->read([&](Connection &c) { return postgres::count_jobs(c, status); });
}

// ---- artifact writes ----

Artifact PostgresStore::save_artifact(const ArtifactInput &input) {
    if (!input.data_json) throw StoreError(StoreError::Kind::invalid, "data is required");
    Artifact saved;
    impl_->queue.call(SaveArtifact{&input, &saved});
    return saved;
}

std::optional<Artifact> PostgresStore::update_artifact(const std::string &id, const ArtifactInput &input) {
    std::optional<Artifact> updated;
    impl_->queue.call(UpdateArtifact{&id, &input, &updated});
    return updated;
}

bool PostgresStore::delete_artifact(const std::string &id) {
    bool deleted = false;
    impl_->queue.call(DeleteArtifact{&id, &deleted});
    return deleted;
}

// ---- artifact reads ----

std::optional<Artifact> PostgresStore::get_artifact(const std::string &id) const {
    return impl_->read([&](Connection &c) { return postgres::get_artifact(c, id); });
}

std::vector<Artifact> PostgresStore::list_artifacts(size_t limit, size_t offset) const {
    return impl_->read([&](Connection &c) { return postgres::list_artifacts(c, limit, offset); });
}

size_t PostgresStore::count_artifacts() const {
    return impl_->read([](Connection &c) { return postgres::count_artifacts(c); });
}

std::vector<Artifact> PostgresStore::artifact_subtree(const std::string &root_id) const {
    return impl_->read([&](Connection &c) { return postgres::artifact_subtree(c, root_id); });
}

// ---- a fleet ----

void PostgresStore::describe_host(const std::string &address, const std::string &version,
                                  const std::string &plugins_json, const std::string &tasks_json) {
    impl_->heartbeat.describe(address, version, plugins_json, tasks_json);
}

std::vector<Store::HostRecord> PostgresStore::hosts() const {
    return impl_->read([&](Connection &c) {
        Params p;
        p.add(impl_->lease.lease_us);
        Rows r = c.run(kHosts, p);
        std::vector<HostRecord> out;
        for (int i = 0; i < r.size(); ++i)
            out.push_back(
                {r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4), r.i64(i, 5), r.i64(i, 6)});
        return out;
    });
}

std::string PostgresStore::describing_host() const { return impl_->lease.host_id; }

void PostgresStore::listen(FleetEvents events) { impl_->listener.set(std::move(events)); }

std::vector<Job> PostgresStore::claim_pending(const std::vector<Runnable> &runnable, size_t limit) {
    if (runnable.empty() || limit == 0) return {};
    // Not retried (as other reads are): a claim whose answer was lost may
    // have committed, and a second one would find nothing to say so.
    ReadPool::Lease conn(impl_->reads);
    return postgres::claim_pending(*conn, runnable, limit, impl_->lease);
}

std::vector<Job> PostgresStore::held_pending() const {
    return impl_->read([&](Connection &c) { return postgres::held_pending(c, impl_->lease); });
}

void PostgresStore::release_pending(const std::vector<std::string> &ids) {
    if (ids.empty()) return;
    impl_->read([&](Connection &c) { postgres::release_pending(c, ids); });
}

bool PostgresStore::cancel_pending(const std::string &id, int64_t now) {
    return impl_->read([&](Connection &c) { return postgres::cancel_pending(c, id, now); });
}

void PostgresStore::ask_cancel(const std::string &id) {
    impl_->read([&](Connection &c) { postgres::ask_cancel(c, id, now_us()); });
}

std::unique_ptr<TaskConnection> PostgresStore::task_connection() {
    return make_task_connection(impl_->url, impl_->sync_full);
}

}  // namespace taskhost::store
