#include "store/sqlite/connection.hpp"

#include <string>

namespace taskhost::store::sqlite {

void throw_sqlite(sqlite3 *db, int rc, std::string_view context) {
    std::string msg;
    if (!context.empty()) {
        msg.append(context);
        msg.append(": ");
    }
    // errmsg describes the most recent failure on this connection, which is
    // this one; fall back to the generic text if there is no connection.
    msg.append(db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    const auto kind = (rc & 0xff) == SQLITE_CONSTRAINT ? StoreError::Kind::invalid : StoreError::Kind::internal;
    throw StoreError(kind, msg);
}

namespace {

// Process-wide settings, applied before SQLite initializes itself. Without
// memory statistics (which taskhost never reads) SQLite's allocator takes
// no global mutex per allocation; the writer's profile showed mutex lock and
// unlock at about 3% of its samples.
void configure_sqlite_once() {
    static const bool configured = [] {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);  // SQLITE_MISUSE if already initialized: harmless
        return true;
    }();
    (void)configured;
}

}  // namespace

Connection::Connection(const std::string &name, bool memory, Role role, bool sync_full) {
    configure_sqlite_once();
    // NOMUTEX: a connection is only ever used by one thread at a time (the
    // writer, a pooled reader on lease, or a task connection under its lock).
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (memory) flags |= SQLITE_OPEN_URI;
    const int rc = sqlite3_open_v2(name.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = "cannot open database '" + name + "': " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw StoreError(StoreError::Kind::internal, msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    try {
        sqlite3_busy_timeout(db_, 10000);
        exec("PRAGMA foreign_keys=ON");
        exec("PRAGMA temp_store=MEMORY");
        if (!memory) {
            // journal_mode is a property of the file; the writer sets it
            // first, readers then find the database already in WAL mode.
            if (role == Role::writer) exec("PRAGMA journal_mode=WAL");
            // Checkpoints fsync in either mode; FULL also fsyncs the WAL at
            // every commit, so an acknowledged commit survives power loss.
            const bool writes = role == Role::writer || role == Role::task;
            exec(writes && sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
            // No mmap: a growing file makes SQLite remap its window (a TLB
            // shootdown each time), and every connection's mapping counts
            // towards RSS. The OS page cache serves the reads instead.
            exec("PRAGMA mmap_size=0");
            // Only the Checkpointer checkpoints (hooked on the writer): one
            // run by a task's commit would escape the fsync latch, since
            // SQLite's own hook ignores a checkpoint's result.
            if (role == Role::task) sqlite3_wal_autocheckpoint(db_, 0);
        }
        // Small per-connection caches keep memory flat as the database grows:
        // lookups are by index, and hot pages stay in the OS page cache.
        exec(role == Role::writer         ? "PRAGMA cache_size=-8000"
             : role == Role::checkpointer ? "PRAGMA cache_size=-500"
                                          : "PRAGMA cache_size=-2000");
        // Pool readers must never write behind the writer thread's back.
        if (role == Role::reader) exec("PRAGMA query_only=ON");
    } catch (...) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw;
    }
}

Connection::~Connection() {
    for (auto &[sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
}

sqlite3_stmt *Connection::cached(const char *sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return it->second;
    sqlite3_stmt *stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, "prepare");
    cache_.emplace(sql, stmt);
    return stmt;
}

void Connection::exec(const char *sql) {
    char *err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        const auto kind = (rc & 0xff) == SQLITE_CONSTRAINT ? StoreError::Kind::invalid : StoreError::Kind::internal;
        throw StoreError(kind, msg);
    }
}

}  // namespace taskhost::store::sqlite
