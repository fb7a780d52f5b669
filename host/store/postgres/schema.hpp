// The PostgreSQL schema: its migrations and its version (one row in
// taskhost_schema). Hosts of a fleet may start together: migrations run
// under an advisory lock, so one migrates and the others see the result.
#pragma once

#include "store/postgres/connection.hpp"

namespace taskhost::store::postgres {

inline constexpr int kSchemaVersion = 11;

// The schema's version in the database; 0 when it has none yet.
int schema_version(Connection &conn);

// Brings the schema to the current version; returns the version it found.
// Throws StoreError if the database is newer than this build.
int migrate(Connection &conn);

// Throws StoreError(unavailable) unless the schema is at the current
// version (for --no-migrate: the operator runs `taskhost migrate`).
void require_current_schema(Connection &conn);

// A statement that writes without changing anything: to see whether
// commits work again.
inline constexpr char kProbeWrite[] = "UPDATE taskhost_schema SET version = version";

// The database's clock in µs since the epoch: leases are set and compared
// by it alone, so the hosts' clocks may disagree.
#define TASKHOST_PG_NOW_US "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
// The starts a retry-safe job lost with its host may cost: its retry
// policy's max_attempts, or `otherwise` (SQL) without a policy.
#define TASKHOST_PG_MAX_STARTS(otherwise) "(CASE WHEN max_attempts > 1 THEN max_attempts ELSE " otherwise " END)"
// A running job's attempt log with the running attempt appended, lost at
// `at` (µs, SQL) for `why` (text, SQL).
#define TASKHOST_PG_LOG_LOST(at, why)                                                                  \
    "coalesce(attempt_log, '[]'::jsonb) || jsonb_build_array(jsonb_build_object('attempt', attempts, " \
    "'started_at', started_at, 'finished_at', " at ", 'error', " why ", 'run_by', run_by))"

}  // namespace taskhost::store::postgres
