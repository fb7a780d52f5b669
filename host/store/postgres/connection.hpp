// A libpq connection and the results of its statements. Statements take
// text parameters ($1, $2 …) and come back as text; failures are thrown as
// StoreError, their kind from the SQLSTATE: a constraint or bad data is the
// caller's (invalid), a lost server is unavailable, the rest internal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <libpq-fe.h>

#include "store/store.hpp"

namespace taskhost::store::postgres {

// A statement's result: rows of text cells.
class Rows {
public:
    explicit Rows(PGresult *result) : result_(result) {}
    ~Rows() { PQclear(result_); }
    Rows(Rows &&other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
    Rows &operator=(Rows &&) = delete;
    Rows(const Rows &) = delete;

    int size() const { return PQntuples(result_); }
    // Rows an INSERT, UPDATE or DELETE changed.
    int64_t affected() const;
    bool is_null(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }
    std::string text(int row, int col) const {
        return {PQgetvalue(result_, row, col), static_cast<size_t>(PQgetlength(result_, row, col))};
    }
    std::optional<std::string> opt_text(int row, int col) const {
        if (is_null(row, col)) return std::nullopt;
        return text(row, col);
    }
    int64_t i64(int row, int col) const;  // NULL reads as 0
    double f64(int row, int col) const;   // NULL reads as 0
    PGresult *handle() const { return result_; }

private:
    PGresult *result_;
};

// The parameters of one statement, owned until it has run.
class Params {
public:
    Params &add(std::string_view text);
    Params &add(const std::optional<std::string> &text);  // nullopt: NULL
    Params &add(int64_t value);
    Params &add(double value);
    Params &add_null();
    // A text[] (its array literal, each item quoted).
    Params &add_array(const std::vector<std::string> &items);
    // A LIMIT or OFFSET: Store::no_limit (and anything past a bigint) is
    // the largest bigint.
    Params &add_count(size_t n) {
        return add(n > static_cast<size_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(n));
    }
    // A time in µs, 0 meaning "not yet": NULL.
    Params &add_time(int64_t us) { return us ? add(us) : add_null(); }

    int size() const { return static_cast<int>(values_.size()); }
    // One pointer per parameter (NULL for SQL NULL), valid until the next add.
    const char *const *values();

private:
    std::vector<std::optional<std::string>> values_;
    std::vector<const char *> pointers_;
};

// A statement of the job path that each connection prepares once (parsed
// and planned by the server on first use, then only executed): defined as
// a constant, whose address names it.
class Statement {
public:
    constexpr explicit Statement(const char *sql) : sql_(sql) {}
    Statement(const Statement &) = delete;
    Statement &operator=(const Statement &) = delete;
    const char *sql() const { return sql_; }

private:
    const char *sql_;
};

class Connection {
public:
    // Connects; throws StoreError(unavailable) with libpq's reason.
    // `durable_commits` (--sync full): a session whose synchronous_commit
    // is off (the server's, database's or role's default) is raised to on,
    // after each reconnect too, so its commits return only once the
    // server's WAL is flushed; stronger settings (remote_apply…) stay.
    Connection(const std::string &url, bool durable_commits);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // One statement with parameters. Throws StoreError.
    Rows run(const char *sql, Params &params);
    // The same, prepared on this connection the first time.
    Rows run(const Statement &statement, Params &params);
    Rows run(const char *sql) {
        Params none;
        return run(sql, none);
    }
    // Text without parameters, which may hold several statements.
    void exec(const char *sql);

    // COMMIT, which PostgreSQL answers with a ROLLBACK (and no error) when
    // an earlier statement aborted the transaction: then this throws.
    void commit();

    // Whether the server is still there, as far as libpq knows.
    // Also when a reconnect got through but raising synchronous_commit did
    // not: the next use reconnects again rather than commit without it.
    bool broken() const { return PQstatus(conn_) != CONNECTION_OK || unraised_; }
    // Inside a transaction (or a failed one, until ROLLBACK).
    bool in_transaction() const;
    // Reconnects a broken connection; false if the server is not back.
    bool reset();
    PGconn *handle() const { return conn_; }

private:
    Rows result_of(PGresult *result);
    void raise_synchronous_commit();  // durable_commits_: after each connect

    PGconn *conn_;
    const bool durable_commits_;
    bool unraised_ = false;  // reset() connected, raise_synchronous_commit() failed
    // The statements prepared on this session, and their names (a new
    // session, after reset(), has none).
    std::unordered_map<const Statement *, std::string> prepared_;
};

// The StoreError for a failed result (its SQLSTATE picks the kind).
StoreError error_of(PGconn *conn, PGresult *result);

}  // namespace taskhost::store::postgres
