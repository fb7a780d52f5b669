#include "store/sqlite/schema.hpp"

#include <iterator>
#include <string>

namespace taskhost::store::sqlite {

namespace {

// Migration N takes the schema from version N-1 to N. Append only: never edit
// a migration that has shipped.
const char *const kMigrations[] = {
    // 1: jobs and artifacts.
    R"sql(
    -- seq aliases the rowid so insertion order survives VACUUM.
    CREATE TABLE jobs (
        seq              INTEGER PRIMARY KEY,
        id               TEXT NOT NULL UNIQUE,
        task_name        TEXT NOT NULL,
        params           TEXT NOT NULL DEFAULT '{}',
        status           TEXT NOT NULL,
        submitted_at     INTEGER,
        started_at       INTEGER,
        finished_at      INTEGER,
        error            TEXT,
        error_traceback  TEXT,
        artifact_id      TEXT,
        progress         REAL,
        progress_message TEXT NOT NULL DEFAULT '',
        timeout_s        REAL
    );
    -- Newest-first listing walks the table b-tree backwards (ORDER BY seq
    -- DESC); an index on status alone carries seq as its last key, so the
    -- filtered listing and count are index-only in the same order.
    CREATE INDEX jobs_status ON jobs(status);

    CREATE TABLE artifacts (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        parent_id   TEXT REFERENCES artifacts(id) ON DELETE SET NULL,
        level       INTEGER NOT NULL DEFAULT 0,
        data        TEXT NOT NULL,
        tags        TEXT NOT NULL DEFAULT '[]',
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX artifacts_parent ON artifacts(parent_id);
    )sql",
    // 2: fewer B-trees written per job (each dirty page is a WAL frame, two
    // writes, at every commit). Jobs are keyed by their ULID, which is
    // time-ordered (the generator is monotonic), so the table itself gives
    // newest-first order and no separate id index is needed. Result
    // artifacts have no parent: the parent index leaves NULLs out (every
    // lookup by parent_id = ? can still use it).
    R"sql(
    CREATE TABLE jobs_v2 (
        id               TEXT PRIMARY KEY NOT NULL,
        task_name        TEXT NOT NULL,
        params           TEXT NOT NULL DEFAULT '{}',
        status           TEXT NOT NULL,
        submitted_at     INTEGER,
        started_at       INTEGER,
        finished_at      INTEGER,
        error            TEXT,
        error_traceback  TEXT,
        artifact_id      TEXT,
        progress         REAL,
        progress_message TEXT NOT NULL DEFAULT '',
        timeout_s        REAL
    ) WITHOUT ROWID;
    INSERT INTO jobs_v2 (id, task_name, params, status, submitted_at, started_at, finished_at, error,
                         error_traceback, artifact_id, progress, progress_message, timeout_s)
        SELECT id, task_name, params, status, submitted_at, started_at, finished_at, error,
               error_traceback, artifact_id, progress, progress_message, timeout_s
        FROM jobs ORDER BY id;
    DROP TABLE jobs;
    ALTER TABLE jobs_v2 RENAME TO jobs;
    -- Carries the key (id) after status: the filtered listing and count
    -- are index-only, newest first.
    CREATE INDEX jobs_status ON jobs(status);

    DROP INDEX artifacts_parent;
    CREATE INDEX artifacts_parent ON artifacts(parent_id) WHERE parent_id IS NOT NULL;
    )sql",
    // 3: hostile plugins. A job counts its starts (each committed before its
    // task runs), and each plugin version (its content hash) its faults:
    // crashes of the host in a task, failed or wedged probes, hangs past a
    // hard limit. quarantined_at is set once they reach their threshold.
    R"sql(
    ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

    CREATE TABLE plugin_faults (
        hash            TEXT PRIMARY KEY NOT NULL,
        file            TEXT NOT NULL,
        name            TEXT NOT NULL DEFAULT '',
        version         TEXT NOT NULL DEFAULT '',
        tasks           TEXT NOT NULL DEFAULT '[]',
        crashes         INTEGER NOT NULL DEFAULT 0,
        load_failures   INTEGER NOT NULL DEFAULT 0,
        hangs           INTEGER NOT NULL DEFAULT 0,
        last_reason     TEXT NOT NULL DEFAULT '',
        last_at         INTEGER NOT NULL,
        quarantined_at  INTEGER
    ) WITHOUT ROWID;
    )sql",
    // 4: a job of a retry-safe task is queued again when its host stopped
    // while it ran (kill -9, power loss) instead of failed.
    R"sql(
    ALTER TABLE jobs ADD COLUMN retry_safe INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 5: priorities (-10..10) and delayed jobs (status 'scheduled' until
    // run_at, µs since the epoch).
    R"sql(
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN run_at INTEGER;
    )sql",
    // 6: idempotency keys. A key is held by one job at a time: an expired
    // one is taken from its old job when it is used again.
    R"sql(
    ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
    ALTER TABLE jobs ADD COLUMN request_hash TEXT;
    CREATE UNIQUE INDEX jobs_idempotency_key ON jobs(idempotency_key) WHERE idempotency_key IS NOT NULL;
    )sql",
    // 7: retries. A job's retry policy (NULL: none), its attempts in all,
    // and the attempts that failed before the one it shows (a JSON array).
    R"sql(
    ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE jobs ADD COLUMN retry TEXT;
    ALTER TABLE jobs ADD COLUMN attempt_log TEXT;
    )sql",
    // 8: retention deletes finished jobs oldest first.
    R"sql(
    CREATE INDEX jobs_finished ON jobs(finished_at) WHERE status IN ('completed', 'failed', 'canceled');
    )sql",
    // 9: recurring jobs. A schedule fires its task on a cron expression;
    // each run is a job that names it. A plugin declares at most one per
    // task.
    R"sql(
    ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
    CREATE TABLE schedules (
        id           TEXT PRIMARY KEY NOT NULL,
        task_name    TEXT NOT NULL,
        params       TEXT NOT NULL DEFAULT '{}',
        cron         TEXT NOT NULL,
        time_zone    TEXT NOT NULL DEFAULT 'UTC',
        enabled      INTEGER NOT NULL DEFAULT 1,
        from_plugin  INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        next_run_at  INTEGER,
        last_run_at  INTEGER,
        last_job_id  TEXT,
        last_error   TEXT,
        runs         INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX schedules_plugin_task ON schedules(task_name) WHERE from_plugin <> 0;
    )sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

[[noreturn]] void too_new(int version) {
    throw StoreError(StoreError::Kind::internal, "database schema version " + std::to_string(version) +
                                                     " is newer than this build understands (" +
                                                     std::to_string(kSchemaVersion) + ")");
}

int user_version(Connection &conn) {
    Stmt s(conn, "PRAGMA user_version");
    return s.step() ? static_cast<int>(s.i64(0)) : 0;
}

}  // namespace

int migrate(Connection &conn) {
    conn.exec("BEGIN IMMEDIATE");
    try {
        const int version = user_version(conn);
        if (version > kSchemaVersion) too_new(version);
        for (int v = version; v < kSchemaVersion; ++v) conn.exec(kMigrations[v]);
        if (version != kSchemaVersion) {
            // PRAGMA takes no bind parameters; the value is our own integer.
            const std::string set = "PRAGMA user_version=" + std::to_string(kSchemaVersion);
            conn.exec(set.c_str());
        }
        conn.exec("COMMIT");
        return version;
    } catch (...) {
        sqlite3_exec(conn.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

void require_current_schema(Connection &conn) {
    const int version = user_version(conn);
    if (version > kSchemaVersion) too_new(version);
    if (version < kSchemaVersion)
        throw StoreError(StoreError::Kind::unavailable,
                         "database schema version " + std::to_string(version) + " is older than this build's (" +
                             std::to_string(kSchemaVersion) + "): run `taskhost migrate --db FILE` first");
}

void rewrite_schema_version(Connection &conn) {
    static const std::string sql = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
    Stmt(conn, sql.c_str()).run();
}

}  // namespace taskhost::store::sqlite
