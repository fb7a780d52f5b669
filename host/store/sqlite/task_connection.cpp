// TaskConnection: SQL for plugin task code, JSON in and out.
//
// One statement per query(): SQL text holding a second statement is refused
// rather than half-run, so a task never wonders which part executed.
#include <cctype>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string &msg) { throw StoreError(StoreError::Kind::invalid, msg); }

std::string base64(const unsigned char *p, size_t n) {
    static constexpr char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
        out += kTable[v >> 18];
        out += kTable[(v >> 12) & 63];
        out += kTable[(v >> 6) & 63];
        out += kTable[v & 63];
    }
    if (i < n) {
        uint32_t v = uint32_t{p[i]} << 16;
        if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
        out += kTable[v >> 18];
        out += kTable[(v >> 12) & 63];
        out += i + 1 < n ? kTable[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

class SqliteTaskConnection final : public TaskConnection {
public:
    SqliteTaskConnection(const std::string &name, bool memory, bool sync_full, std::shared_ptr<CommitHealth> health)
        : conn_(name, memory, Connection::Role::task, sync_full), health_(std::move(health)) {}

    ~SqliteTaskConnection() override {
        // Never leave a write lock behind for the store's writer.
        if (!sqlite3_get_autocommit(conn_.handle()))
            sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        // Were it the last connection, closing would checkpoint.
        if (health_->latched()) sqlite3_db_config(conn_.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        for (auto &[sql, stmt] : adhoc_) sqlite3_finalize(stmt);
    }

    std::string query(const std::string &sql, const std::string &params_json) override {
        json params;
        if (!params_json.empty()) {
            params = json::parse(params_json, nullptr, /*allow_exceptions=*/false);
            if (params.is_discarded() || !(params.is_array() || params.is_null()))
                invalid("query parameters must be a JSON array");
        }

        std::lock_guard lock(mu_);
        sqlite3 *db = conn_.handle();
        sqlite3_stmt *stmt = statement(sql);
        if (!stmt) return "[]";  // only whitespace / comments

        // Reset even when binding or stepping throws, so no read snapshot or
        // statement lock outlives the call.
        struct Reset {
            sqlite3_stmt *s;
            ~Reset() {
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
            }
        } reset{stmt};

        // After an fsync failed, task code reads but no longer writes
        // (CommitHealth::latch), as the store's own writer does. COMMIT
        // and RELEASE count as read-only to SQLite, yet write what the
        // transaction holds.
        if (health_->latched() && (!sqlite3_stmt_readonly(stmt) || ends_transaction(stmt))) refuse_latched();
        const size_t given = params.is_array() ? params.size() : 0;
        const auto expected = static_cast<size_t>(sqlite3_bind_parameter_count(stmt));
        if (given != expected)
            invalid("query expects " + std::to_string(expected) + " parameter(s), got " + std::to_string(given));
        // Strings are bound straight from `params`, which outlives the steps.
        for (size_t i = 0; i < given; ++i) bind(db, stmt, static_cast<int>(i + 1), params[i]);

        json rows = json::array();
        const int ncol = sqlite3_column_count(stmt);
        for (;;) {
            const int rc = sqlite3_step(stmt);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) failed(sqlite3_errmsg(db));
            json row = json::object();
            for (int c = 0; c < ncol; ++c) row[sqlite3_column_name(stmt, c)] = column(stmt, c);
            rows.push_back(std::move(row));
        }
        // Invalid UTF-8 in TEXT must not make the whole result unreadable.
        return rows.dump(-1, ' ', false, json::error_handler_t::replace);
    }

    void begin() override {
        // IMMEDIATE takes the write lock up front: a deferred transaction that
        // reads, then writes, can fail with SQLITE_BUSY when the store's writer
        // committed in between; this way it waits (busy_timeout) instead.
        run("BEGIN IMMEDIATE");
    }
    void commit() override {
        std::lock_guard lock(mu_);
        if (health_->latched()) refuse_latched();
        exec_locked("COMMIT");
    }
    void rollback() override {
        std::lock_guard lock(mu_);
        if (sqlite3_get_autocommit(conn_.handle())) return;  // nothing to undo
        exec_locked("ROLLBACK");
    }
    bool in_transaction() const override {
        std::lock_guard lock(mu_);
        return !sqlite3_get_autocommit(conn_.handle());
    }

private:
    static constexpr size_t kMaxCached = 64;

    // Prepared once per distinct SQL text (tasks tend to repeat queries);
    // nullptr for text without any statement.
    sqlite3_stmt *statement(const std::string &sql) {
        if (auto it = adhoc_.find(sql); it != adhoc_.end()) return it->second;
        sqlite3 *db = conn_.handle();
        sqlite3_stmt *stmt = nullptr;
        const char *tail = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt, &tail) != SQLITE_OK)
            invalid(sqlite3_errmsg(db));
        if (!stmt) return nullptr;
        // Anything after the first statement must be whitespace or comments.
        const char *end = sql.c_str() + sql.size();
        if (tail && tail < end) {
            sqlite3_stmt *next = nullptr;
            const int rc = sqlite3_prepare_v2(db, tail, static_cast<int>(end - tail), &next, nullptr);
            sqlite3_finalize(next);
            if (rc != SQLITE_OK || next) {
                sqlite3_finalize(stmt);
                invalid("query accepts one SQL statement; run further statements with separate calls");
            }
        }
        if (adhoc_.size() >= kMaxCached) {
            for (auto &[text, s] : adhoc_) sqlite3_finalize(s);
            adhoc_.clear();
        }
        adhoc_.emplace(sql, stmt);
        return stmt;
    }

    static void bind(sqlite3 *db, sqlite3_stmt *stmt, int i, const json &v) {
        int rc = SQLITE_OK;
        switch (v.type()) {
            case json::value_t::null: rc = sqlite3_bind_null(stmt, i); break;
            case json::value_t::boolean: rc = sqlite3_bind_int(stmt, i, v.get<bool>() ? 1 : 0); break;
            case json::value_t::number_integer: rc = sqlite3_bind_int64(stmt, i, v.get<int64_t>()); break;
            case json::value_t::number_unsigned: {
                const auto u = v.get<uint64_t>();
                rc = u <= static_cast<uint64_t>(INT64_MAX) ? sqlite3_bind_int64(stmt, i, static_cast<int64_t>(u))
                                                           : sqlite3_bind_double(stmt, i, static_cast<double>(u));
                break;
            }
            case json::value_t::number_float: rc = sqlite3_bind_double(stmt, i, v.get<double>()); break;
            case json::value_t::string: {
                const auto &s = v.get_ref<const std::string &>();
                rc = sqlite3_bind_text(stmt, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
                break;
            }
            default: {
                // Objects and arrays go in as their JSON text (SQLite's JSON
                // functions read it back).
                const std::string text = v.dump();
                rc = sqlite3_bind_text(stmt, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
                break;
            }
        }
        if (rc != SQLITE_OK) invalid(sqlite3_errmsg(db));
    }

    static json column(sqlite3_stmt *stmt, int c) {
        switch (sqlite3_column_type(stmt, c)) {
            case SQLITE_INTEGER: return sqlite3_column_int64(stmt, c);
            case SQLITE_FLOAT: return sqlite3_column_double(stmt, c);
            case SQLITE_TEXT: {
                const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(stmt, c));
                return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
            }
            case SQLITE_BLOB: {
                const auto *p = static_cast<const unsigned char *>(sqlite3_column_blob(stmt, c));
                return base64(p, static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
            }
            default: return nullptr;
        }
    }

    static bool ends_transaction(sqlite3_stmt *stmt) {
        std::string_view sql = sqlite3_sql(stmt);
        while (!sql.empty() && std::isspace(static_cast<unsigned char>(sql.front()))) sql.remove_prefix(1);
        std::string word;
        for (char c : sql.substr(0, 8)) {
            if (!std::isalpha(static_cast<unsigned char>(c))) break;
            word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        return word == "COMMIT" || word == "END" || word == "RELEASE";
    }
    // Latched: what the transaction wrote is undone, and the caller told why.
    [[noreturn]] void refuse_latched() {
        if (!sqlite3_get_autocommit(conn_.handle()))
            sqlite3_exec(conn_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        throw StoreError(StoreError::Kind::unavailable, health_->failure());
    }

    // A statement or COMMIT failed: an fsync that failed latches the store.
    [[noreturn]] void failed(const std::string &msg) {
        if (is_fsync_failure(sqlite3_extended_errcode(conn_.handle()))) {
            health_->latch_fsync_failure(msg);
            throw StoreError(StoreError::Kind::unavailable, health_->failure());
        }
        invalid(msg);
    }

    void run(const char *sql) {
        std::lock_guard lock(mu_);
        exec_locked(sql);
    }
    void exec_locked(const char *sql) {
        char *err = nullptr;
        if (sqlite3_exec(conn_.handle(), sql, nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : sqlite3_errmsg(conn_.handle());
            sqlite3_free(err);
            failed(msg);
        }
    }

    mutable std::mutex mu_;  // task code may share one connection across threads
    Connection conn_;
    const std::shared_ptr<CommitHealth> health_;  // the store's
    std::unordered_map<std::string, sqlite3_stmt *> adhoc_;
};

}  // namespace

std::unique_ptr<TaskConnection> make_task_connection(const std::string &name, bool memory, bool sync_full,
                                                     std::shared_ptr<CommitHealth> health) {
    return std::make_unique<SqliteTaskConnection>(name, memory, sync_full, std::move(health));
}

}  // namespace taskhost::store::sqlite
