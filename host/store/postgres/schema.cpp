#include "store/postgres/schema.hpp"

#include <iterator>
#include <string>

namespace taskhost::store::postgres {

namespace {

// Migration N takes the schema from version N-1 to N. Append only: never
// edit a migration that has shipped. Times are µs since the epoch (bigint),
// as in the SQLite store; artifacts' data and tags are jsonb.
const char *const kMigrations[] = {
    // 1: jobs, artifacts, plugin faults.
    R"sql(
    CREATE TABLE jobs (
        id               text PRIMARY KEY,
        task_name        text NOT NULL,
        params           text NOT NULL DEFAULT '{}',
        status           text NOT NULL,
        submitted_at     bigint,
        started_at       bigint,
        finished_at      bigint,
        error            text,
        error_traceback  text,
        artifact_id      text,
        progress         double precision,
        progress_message text NOT NULL DEFAULT '',
        timeout_s        double precision,
        attempts         integer NOT NULL DEFAULT 0
    );
    -- Job ids are time-ordered ULIDs: (status, id) serves the filtered
    -- listing newest first and its count.
    CREATE INDEX jobs_status ON jobs (status, id);

    CREATE TABLE artifacts (
        seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id          text PRIMARY KEY,
        parent_id   text REFERENCES artifacts (id) ON DELETE SET NULL,
        level       integer NOT NULL DEFAULT 0,
        data        jsonb NOT NULL,
        tags        jsonb NOT NULL DEFAULT '[]',
        created_at  bigint NOT NULL,
        updated_at  bigint NOT NULL
    );
    -- Result artifacts have no parent: the index leaves NULLs out.
    CREATE INDEX artifacts_parent ON artifacts (parent_id) WHERE parent_id IS NOT NULL;

    CREATE TABLE plugin_faults (
        hash            text PRIMARY KEY,
        file            text NOT NULL,
        name            text NOT NULL DEFAULT '',
        version         text NOT NULL DEFAULT '',
        tasks           text NOT NULL DEFAULT '[]',
        crashes         bigint NOT NULL DEFAULT 0,
        load_failures   bigint NOT NULL DEFAULT 0,
        hangs           bigint NOT NULL DEFAULT 0,
        last_reason     text NOT NULL DEFAULT '',
        last_at         bigint NOT NULL,
        quarantined_at  bigint
    );
    )sql",
    // 2: a fleet. A running job carries the host that runs it and a lease
    // that host renews; any host fails a job whose lease ran out. A pending
    // job carries the host that queued it. Hosts say who they are, and
    // when they were last heard of.
    R"sql(
    ALTER TABLE jobs ADD COLUMN run_by text, ADD COLUMN lease_until bigint, ADD COLUMN queued_by text;
    CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';

    CREATE TABLE hosts (
        id            text PRIMARY KEY,
        address       text NOT NULL DEFAULT '',
        version       text NOT NULL DEFAULT '',
        plugins       jsonb NOT NULL DEFAULT '[]',
        started_at    bigint NOT NULL,
        heartbeat_at  bigint NOT NULL
    );
    )sql",
    // 3: a cancel asked of the host running a job, kept in its row (a
    // notice alone can be lost); that host's heartbeat reads it back.
    R"sql(
    ALTER TABLE jobs ADD COLUMN cancel_requested_at bigint;
    )sql",
    // 4: rolling deploys. The plugin version a job was accepted for (a host
    // claims it only with the same major version loaded) and the one that
    // ran it.
    R"sql(
    ALTER TABLE jobs ADD COLUMN plugin_version text, ADD COLUMN ran_version text;
    )sql",
    // 5: any host accepts a job for a task only some hosts have: each host
    // describes its tasks (their TaskInfo, with the params schema to check
    // a submit against).
    R"sql(
    ALTER TABLE hosts ADD COLUMN tasks jsonb NOT NULL DEFAULT '[]';
    )sql",
    // 6: a job of a retry-safe task whose host is lost while it runs is
    // queued again (up to 3 starts) instead of failed.
    R"sql(
    ALTER TABLE jobs ADD COLUMN retry_safe boolean NOT NULL DEFAULT false;
    )sql",
    // 7: priorities (-10..10) and delayed jobs (status 'scheduled' until
    // run_at, µs since the epoch).
    R"sql(
    ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN run_at bigint;
    -- The claim's order (model::queue_rank), so that a claim reads the
    -- first rows of a backlog instead of sorting all of it.
    CREATE INDEX jobs_claim_order ON jobs ((greatest(run_at, submitted_at) - priority * 10000000::bigint), id)
        WHERE status IN ('pending', 'scheduled');
    )sql",
    // 8: idempotency keys. A key is held by one job at a time (the hosts of
    // a fleet race on this index): an expired one is taken from its old job
    // when it is used again.
    R"sql(
    ALTER TABLE jobs ADD COLUMN idempotency_key text;
    ALTER TABLE jobs ADD COLUMN request_hash text;
    CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
    )sql",
    // 9: retries. A job's retry policy (NULL: none), its attempts in all,
    // and the attempts that failed before the one it shows.
    R"sql(
    ALTER TABLE jobs ADD COLUMN max_attempts integer NOT NULL DEFAULT 1, ADD COLUMN retry text,
        ADD COLUMN attempt_log jsonb;
    )sql",
    // 10: retention deletes finished jobs oldest first.
    R"sql(
    CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('completed', 'failed', 'canceled');
    )sql",
    // 11: recurring jobs. A schedule fires its task on a cron expression;
    // each run is a job that names it. A plugin declares at most one per
    // task (the hosts loading it race on this index).
    R"sql(
    ALTER TABLE jobs ADD COLUMN schedule_id text;
    CREATE TABLE schedules (
        id           text PRIMARY KEY,
        task_name    text NOT NULL,
        params       text NOT NULL DEFAULT '{}',
        cron         text NOT NULL,
        time_zone    text NOT NULL DEFAULT 'UTC',
        enabled      boolean NOT NULL DEFAULT true,
        from_plugin  boolean NOT NULL DEFAULT false,
        created_at   bigint NOT NULL,
        updated_at   bigint NOT NULL,
        next_run_at  bigint,
        last_run_at  bigint,
        last_job_id  text,
        last_error   text,
        runs         bigint NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX schedules_plugin_task ON schedules (task_name) WHERE from_plugin;
    )sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// Any key will do, as long as no other program on the database uses it:
// "taskhost" read as a number, in base 36.
constexpr char kLock[] = "SELECT pg_advisory_xact_lock(2296056052685)";

[[noreturn]] void too_new(int version) {
    throw StoreError(StoreError::Kind::internal, "database schema version " + std::to_string(version) +
                                                     " is newer than this build understands (" +
                                                     std::to_string(kSchemaVersion) + ")");
}

}  // namespace

int schema_version(Connection &conn) {
    Rows exists = conn.run("SELECT to_regclass('taskhost_schema') IS NOT NULL");
    if (exists.text(0, 0) != "t") return 0;
    Rows v = conn.run("SELECT version FROM taskhost_schema");
    return v.size() ? static_cast<int>(v.i64(0, 0)) : 0;
}

int migrate(Connection &conn) {
    conn.exec("BEGIN");
    try {
        conn.run(kLock);
        conn.exec("CREATE TABLE IF NOT EXISTS taskhost_schema (version integer NOT NULL)");
        const int version = schema_version(conn);
        if (version > kSchemaVersion) too_new(version);
        for (int v = version; v < kSchemaVersion; ++v) conn.exec(kMigrations[v]);
        if (version != kSchemaVersion) {
            conn.exec("DELETE FROM taskhost_schema");
            Params p;
            p.add(int64_t{kSchemaVersion});
            conn.run("INSERT INTO taskhost_schema (version) VALUES ($1)", p);
        }
        conn.exec("COMMIT");
        return version;
    } catch (...) {
        PQclear(PQexec(conn.handle(), "ROLLBACK"));
        throw;
    }
}

void require_current_schema(Connection &conn) {
    const int version = schema_version(conn);
    if (version > kSchemaVersion) too_new(version);
    if (version < kSchemaVersion)
        throw StoreError(StoreError::Kind::unavailable,
                         "database schema version " + std::to_string(version) + " is older than this build's (" +
                             std::to_string(kSchemaVersion) + "): run `taskhost migrate --db URL` first");
}

}  // namespace taskhost::store::postgres
