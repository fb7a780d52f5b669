// The database schema: its migrations, and its version (PRAGMA user_version).
#pragma once

#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {

inline constexpr int kSchemaVersion = 9;

// Brings the schema to the current version; returns the version it found.
// Runs on the write connection before any other connection is opened.
int migrate(Connection &conn);

// Throws StoreError(unavailable) unless the schema is at the current
// version (for --no-migrate: the operator runs `taskhost migrate`).
void require_current_schema(Connection &conn);

// Sets the schema version to itself: it changes nothing but dirties page 1,
// so the commit of the open transaction has to write to the disk.
void rewrite_schema_version(Connection &conn);

}  // namespace taskhost::store::sqlite
