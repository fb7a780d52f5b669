// TaskConnection on PostgreSQL: SQL for plugin task code, JSON in and out.
// Each query() is one statement (the extended protocol refuses a second);
// parameters go in as text, and cells come back typed by their column:
// numbers, booleans and json/jsonb as JSON values, everything else as text.
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "store/postgres/connection.hpp"
#include "store/postgres/task_connection.hpp"

namespace taskhost::store::postgres {
namespace {

using nlohmann::json;

// Type OIDs of the built-in types (pg_type.dat; stable across versions).
enum : Oid {
    kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kOid = 26, kJson = 114,
    kFloat4 = 700, kFloat8 = 701, kNumeric = 1700, kJsonb = 3802,
};

[[noreturn]] void invalid(const std::string &msg) { throw StoreError(StoreError::Kind::invalid, msg); }

json cell(const Rows &rows, int row, int col) {
    if (rows.is_null(row, col)) return nullptr;
    const std::string text = rows.text(row, col);
    switch (PQftype(rows.handle(), col)) {
        case kBool: return text == "t";
        case kInt2:
        case kInt4:
        case kInt8:
        case kOid:
        case kFloat4:
        case kFloat8:
        case kNumeric:
        case kJson:
        case kJsonb: {
            // NaN and Infinity are not JSON: they stay text.
            json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
            return v.is_discarded() ? json(text) : v;
        }
        default: return text;
    }
}

class PgTaskConnection final : public TaskConnection {
public:
    PgTaskConnection(const std::string &url, bool durable_commits) : conn_(url, durable_commits) {}

    ~PgTaskConnection() override {
        if (!conn_.broken() && conn_.in_transaction()) PQclear(PQexec(conn_.handle(), "ROLLBACK"));
    }

    std::string query(const std::string &sql, const std::string &params_json) override {
        json params;
        if (!params_json.empty()) {
            params = json::parse(params_json, nullptr, /*allow_exceptions=*/false);
            if (params.is_discarded() || !(params.is_array() || params.is_null()))
                invalid("query parameters must be a JSON array");
        }
        Params p;
        if (params.is_array())
            for (const json &v : params) {
                if (v.is_null()) p.add_null();
                else if (v.is_string()) p.add(std::string_view(v.get_ref<const std::string &>()));
                else if (v.is_boolean()) p.add(std::string_view(v.get<bool>() ? "true" : "false"));
                else p.add(std::string_view(v.dump()));  // numbers, and objects / arrays as JSON text
            }
        std::lock_guard lock(mu_);
        if (conn_.broken() && !conn_.reset())
            throw StoreError(StoreError::Kind::unavailable, "PostgreSQL is unreachable");
        Rows rows = run_one(sql, p);
        json out = json::array();
        const int ncol = PQnfields(rows.handle());
        for (int r = 0; r < rows.size(); ++r) {
            json row = json::object();
            for (int c = 0; c < ncol; ++c) row[PQfname(rows.handle(), c)] = cell(rows, r, c);
            out.push_back(std::move(row));
        }
        return out.dump(-1, ' ', false, json::error_handler_t::replace);
    }

    void begin() override { run("BEGIN"); }
    void commit() override {
        std::lock_guard lock(mu_);
        // PostgreSQL only warns about a COMMIT with nothing open.
        if (!conn_.in_transaction()) invalid("no transaction is open");
        conn_.commit();
    }
    void rollback() override {
        std::lock_guard lock(mu_);
        if (!conn_.in_transaction()) return;  // nothing to undo
        conn_.exec("ROLLBACK");
    }
    bool in_transaction() const override {
        std::lock_guard lock(mu_);
        return conn_.in_transaction();
    }

private:
    // The extended protocol runs one statement; its refusal of a second is
    // said as the SQLite store says it.
    Rows run_one(const std::string &sql, Params &params) {
        try {
            return conn_.run(sql.c_str(), params);
        } catch (const StoreError &e) {
            if (std::string_view(e.what()).find("multiple commands") == std::string_view::npos) throw;
            invalid("query accepts one SQL statement; run further statements with separate calls");
        }
    }

    void run(const char *sql) {
        std::lock_guard lock(mu_);
        conn_.exec(sql);
    }

    mutable std::mutex mu_;  // task code may share one connection across threads
    Connection conn_;
};

}  // namespace

std::unique_ptr<TaskConnection> make_task_connection(const std::string &url, bool durable_commits) {
    return std::make_unique<PgTaskConnection>(url, durable_commits);
}

}  // namespace taskhost::store::postgres
