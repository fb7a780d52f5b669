// Thin RAII layer over the SQLite C API used by the store: a connection with
// its own cache of persistent prepared statements, a scoped statement borrow
// that always resets (so no connection keeps a read transaction open), and
// savepoints.
// Internal to host/store/sqlite.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sqlite3.h>

#include "store/commit_health.hpp"
#include "store/store.hpp"

namespace taskhost::store::sqlite {

// Throws StoreError for an SQLite failure: constraint violations are the
// caller's fault (invalid), everything else is internal.
[[noreturn]] void throw_sqlite(sqlite3 *db, int rc, std::string_view context = {});

class Connection {
public:
    enum class Role { writer, reader, task, checkpointer };

    // `name` is a file path, or a memdb URI when `memory` is set.
    // `sync_full`: a connection that writes (writer, task) has each commit
    // fsync'd before it returns (synchronous=FULL in WAL mode); false:
    // durable against a crash of the process only (synchronous=NORMAL).
    Connection(const std::string &name, bool memory, Role role, bool sync_full = true);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    sqlite3 *handle() const { return db_; }
    // The statement for `sql`, prepared once per connection. Keyed by the
    // pointer: pass string literals / static strings only.
    sqlite3_stmt *cached(const char *sql);
    // Runs SQL text without a result (pragmas, DDL, transaction control).
    void exec(const char *sql);

private:
    sqlite3 *db_ = nullptr;
    std::unordered_map<const char *, sqlite3_stmt *> cache_;
};

// A cached statement borrowed for one execution. Text is bound without a
// copy (SQLITE_STATIC): bound strings must outlive the Stmt's use.
class Stmt {
public:
    Stmt(Connection &conn, const char *sql) : db_(conn.handle()), s_(conn.cached(sql)) {}
    ~Stmt() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    Stmt(const Stmt &) = delete;
    Stmt &operator=(const Stmt &) = delete;

    Stmt &bind(int i, std::string_view v) {
        check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
        return *this;
    }
    Stmt &bind(int i, const char *v) = delete;  // ambiguous lifetime; use string_view
    Stmt &bind(int i, int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    Stmt &bind(int i, double v) {
        check(sqlite3_bind_double(s_, i, v));
        return *this;
    }
    Stmt &bind_null(int i) {
        check(sqlite3_bind_null(s_, i));
        return *this;
    }
    Stmt &bind(int i, const std::optional<std::string> &v) { return v ? bind(i, std::string_view(*v)) : bind_null(i); }
    // 0 → NULL (the store's "not yet" for times and "none" for timeouts).
    Stmt &bind_time(int i, int64_t v) { return v ? bind(i, v) : bind_null(i); }
    // A LIMIT or OFFSET: SQLite takes a signed 64-bit count; anything larger
    // means "all".
    Stmt &bind_count(int i, size_t n) {
        return bind(i, n > static_cast<size_t>(INT64_MAX) ? int64_t{-1} : static_cast<int64_t>(n));
    }

    // True while rows come; false when done; throws on error.
    bool step() {
        const int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw_sqlite(db_, rc);
    }
    // Runs a statement that returns no rows; the number of rows it changed.
    int64_t run() {
        while (step()) {
        }
        return sqlite3_changes64(db_);
    }

    bool is_null(int c) const { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
    int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
    double f64(int c) const { return sqlite3_column_double(s_, c); }
    std::string text(int c) const {
        const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(s_, c));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, c))) : std::string();
    }
    std::optional<std::string> opt_text(int c) const {
        if (is_null(c)) return std::nullopt;
        return text(c);
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
    }
    sqlite3 *db_;
    sqlite3_stmt *s_;
};

inline constexpr char kSavepoint[] = "SAVEPOINT op";
inline constexpr char kReleaseSavepoint[] = "RELEASE op";
inline constexpr char kRollbackToSavepoint[] = "ROLLBACK TO op";

// Runs `body` inside the open transaction so that, if it throws, what it
// wrote is undone alone and the transaction goes on (unless SQLite already
// rolled the whole transaction back).
template <class F>
void in_savepoint(Connection &conn, F &&body) {
    Stmt(conn, kSavepoint).run();
    try {
        body();
    } catch (...) {
        if (!sqlite3_get_autocommit(conn.handle())) {
            Stmt(conn, kRollbackToSavepoint).run();
            Stmt(conn, kReleaseSavepoint).run();
        }
        throw;
    }
    Stmt(conn, kReleaseSavepoint).run();
}

// An extended result code saying an fsync failed (of a file, or of its
// directory): never retried (CommitHealth::latch).
inline bool is_fsync_failure(int extended_code) {
    return extended_code == SQLITE_IOERR_FSYNC || extended_code == SQLITE_IOERR_DIR_FSYNC;
}

// A connection of its own for task code (task_connection.cpp). `health`:
// the store's; once latched, the connection refuses writes.
std::unique_ptr<TaskConnection> make_task_connection(const std::string &name, bool memory, bool sync_full,
                                                     std::shared_ptr<CommitHealth> health);

}  // namespace taskhost::store::sqlite
