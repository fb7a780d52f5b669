#include "store/postgres/connection.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "util/json_text.hpp"

namespace taskhost::store::postgres {

namespace {

// libpq prints notices (e.g. "relation already exists, skipping") to stderr
// by default; the store has nothing to tell an operator from them.
void ignore_notice(void *, const char *) {}

std::string trimmed(const char *message) {
    std::string s = message ? message : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

int64_t Rows::affected() const {
    const char *n = PQcmdTuples(result_);
    int64_t v = 0;
    if (n && *n) std::from_chars(n, n + std::char_traits<char>::length(n), v);
    return v;
}

int64_t Rows::i64(int row, int col) const {
    if (is_null(row, col)) return 0;
    const char *p = PQgetvalue(result_, row, col);
    int64_t v = 0;
    std::from_chars(p, p + PQgetlength(result_, row, col), v);
    return v;
}

double Rows::f64(int row, int col) const {
    if (is_null(row, col)) return 0;
    return std::strtod(PQgetvalue(result_, row, col), nullptr);
}

namespace {

bool is_ascii(std::string_view text) {
    for (char c : text)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    return true;
}

}  // namespace

// A UTF8 database refuses text that is not UTF-8, and the refusal would
// abort the whole batch's transaction: bytes from plugins (error messages,
// progress) may be anything, so invalid ones become U+FFFD, as in the JSON
// the host writes.
Params &Params::add(std::string_view text) {
    values_.emplace_back(is_ascii(text) ? std::string(text) : json_text::valid_utf8(text));
    return *this;
}

Params &Params::add(const std::optional<std::string> &text) {
    if (!text) return add_null();
    return add(std::string_view(*text));
}

Params &Params::add_array(const std::vector<std::string> &items) {
    std::string literal = "{";
    for (const std::string &item : items) {
        if (literal.size() > 1) literal += ',';
        literal += '"';
        for (char c : item) {
            if (c == '"' || c == '\\') literal += '\\';
            literal += c;
        }
        literal += '"';
    }
    literal += '}';
    return add(std::string_view(literal));
}

Params &Params::add(int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
}

Params &Params::add(double value) {
    char buf[32];
    // %.17g reads back as the same double.
    const int n = std::snprintf(buf, sizeof buf, "%.17g", value);
    values_.emplace_back(std::string(buf, static_cast<size_t>(n)));
    return *this;
}

Params &Params::add_null() {
    values_.emplace_back(std::nullopt);
    return *this;
}

const char *const *Params::values() {
    pointers_.clear();
    for (const auto &v : values_) pointers_.push_back(v ? v->c_str() : nullptr);
    return pointers_.data();
}

StoreError error_of(PGconn *conn, PGresult *result) {
    const char *state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    std::string message = trimmed(result ? PQresultErrorMessage(result) : nullptr);
    if (message.empty()) message = trimmed(PQerrorMessage(conn));
    if (message.empty()) message = "PostgreSQL gave no result";
    StoreError::Kind kind = StoreError::Kind::internal;
    const std::string_view code = state ? state : "";
    // Class 23: integrity constraint; 22: data exception (bad JSON, a value
    // out of range); 42: syntax or access rule (task SQL).
    if (code.starts_with("23") || code.starts_with("22") || code.starts_with("42"))
        kind = StoreError::Kind::invalid;
    // Class 08: connection exception; 57P: the server shutting down;
    // no SQLSTATE and a dead connection: the server is gone.
    else if (code.starts_with("08") || code.starts_with("57P") || PQstatus(conn) != CONNECTION_OK)
        kind = StoreError::Kind::unavailable;
    return StoreError(kind, message);
}

namespace {

// libpq waits for a connection without limit by default: a server that does
// not answer would hold the writer, and every health check, for minutes.
// Likewise a server that vanished without closing the connection (a
// failover behind a dead address) would hold a request until TCP gives up,
// about 15 minutes: keepalives and a user timeout notice in about 30 s.
// Each is added unless the URL sets it.
std::string with_connect_timeout(const std::string &url) {
    static const std::pair<const char *, const char *> kDefaults[] = {
        {"connect_timeout", "5"}, {"keepalives_idle", "10"}, {"keepalives_interval", "5"},
        {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"}};
    const bool uri = url.find("://") != std::string::npos;
    std::string out = url;
    for (const auto &[key, value] : kDefaults) {
        if (url.find(key) != std::string::npos) continue;
        if (!uri) out += std::string(" ") + key + "=" + value;  // key=value form
        else out += std::string(out.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
    }
    return out;
}

}  // namespace

Connection::Connection(const std::string &url, bool durable_commits)
    : conn_(PQconnectdb(with_connect_timeout(url).c_str())), durable_commits_(durable_commits) {
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
        PQfinish(conn_);
        throw StoreError(StoreError::Kind::unavailable, "cannot connect to PostgreSQL: " + why);
    }
    PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    try {
        raise_synchronous_commit();
    } catch (...) {
        PQfinish(conn_);
        throw;
    }
}

void Connection::raise_synchronous_commit() {
    if (!durable_commits_) return;
    // One round trip per connect: only `off` acknowledges a commit before
    // its WAL is flushed on the server (`local` and up flush it there).
    Rows r = run("SELECT current_setting('synchronous_commit') = 'off'");
    if (r.size() && r.text(0, 0) == "t") exec("SET synchronous_commit TO on");
}

Connection::~Connection() { PQfinish(conn_); }

Rows Connection::run(const char *sql, Params &params) {
    return result_of(PQexecParams(conn_, sql, params.size(), nullptr, params.values(), nullptr, nullptr, 0));
}

Rows Connection::run(const Statement &statement, Params &params) {
    auto it = prepared_.find(&statement);
    if (it == prepared_.end()) {
        std::string name = "th" + std::to_string(prepared_.size());
        // Parameter types as the statement's text implies them, as PQexecParams does.
        result_of(PQprepare(conn_, name.c_str(), statement.sql(), 0, nullptr));
        it = prepared_.emplace(&statement, std::move(name)).first;
    }
    return result_of(PQexecPrepared(conn_, it->second.c_str(), params.size(), params.values(), nullptr, nullptr, 0));
}

Rows Connection::result_of(PGresult *r) {
    const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    // PGRES_EMPTY_QUERY: text with only comments or whitespace, no rows.
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && status != PGRES_EMPTY_QUERY) {
        StoreError e = error_of(conn_, r);
        PQclear(r);
        throw e;
    }
    return Rows(r);
}

void Connection::exec(const char *sql) {
    PGresult *r = PQexec(conn_, sql);
    const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        StoreError e = error_of(conn_, r);
        PQclear(r);
        throw e;
    }
    PQclear(r);
}

void Connection::commit() {
    Params none;
    Rows r = run("COMMIT", none);
    if (std::string_view(PQcmdStatus(r.handle())) == "ROLLBACK")
        throw StoreError(StoreError::Kind::invalid, "the transaction was rolled back: an earlier statement failed");
}

bool Connection::in_transaction() const {
    const auto s = PQtransactionStatus(conn_);
    return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

bool Connection::reset() {
    PQreset(conn_);
    prepared_.clear();
    if (PQstatus(conn_) != CONNECTION_OK) return false;
    unraised_ = true;
    raise_synchronous_commit();  // a new session has the server's default again
    unraised_ = false;
    return true;
}

}  // namespace taskhost::store::postgres
