// taskhost SDK: the framework services a task receives by parameter type
// (Context, Artifacts, Database, Session, Scheduler). Each is a small handle
// over (host table, call); copying one is free. Every method checks that the
// host offers the function it needs and throws ServiceUnavailable if not, and
// turns a non-OK status into HostError carrying the host's message.
#pragma once

#include <taskhost/abi.h>
#include <taskhost/detail/exceptions.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost {

using json = nlohmann::json;

enum class LogLevel {
    trace = TH_LOG_TRACE,
    debug = TH_LOG_DEBUG,
    info = TH_LOG_INFO,
    warn = TH_LOG_WARN,
    error = TH_LOG_ERROR,
};

namespace detail {

// Serialises `value` (`what` it is, for the error) for the host. A string
// that is not valid UTF-8 throws InvalidUtf8 rather than being altered.
inline std::string to_json_text(const json &value, const char *what) {
    try {
        return value.dump();
    } catch (const json::type_error &e) {
        if (e.id != 316) throw;
        std::string detail = e.what();  // "[json.exception.type_error.316] invalid UTF-8 byte at index 3: 0xFF"
        if (const auto end = detail.find("] "); end != std::string::npos) detail.erase(0, end + 2);
        throw InvalidUtf8(std::string(what) + " holds a string that is not valid UTF-8 (" + detail + ")");
    }
}

// A th_sink that appends into a string this side owns. Not copyable: the
// sink points at the object itself.
class StringSink {
public:
    StringSink() noexcept : sink_{this, &StringSink::write} {}
    StringSink(const StringSink &) = delete;
    StringSink &operator=(const StringSink &) = delete;

    th_sink *get() noexcept { return &sink_; }
    const std::string &str() const noexcept { return buf_; }

private:
    static void write(void *opaque, const char *data, std::size_t len) noexcept {
        if (data == nullptr || len == 0) return;
        auto *self = static_cast<StringSink *>(opaque);
        try {
            self->buf_.append(data, len);
        } catch (...) {
            // The host calls us from C: nothing may escape. A truncated
            // message is the lesser evil.
        }
    }

    std::string buf_;
    th_sink sink_;
};

struct SessionAccess;

class ServiceBase {
public:
    ServiceBase(const th_host_api *host, th_call *call) noexcept : host_(host), call_(call) {}

    // Escape hatch to the raw C API (e.g. for functions appended later).
    const th_host_api *raw_host() const noexcept { return host_; }
    th_call *raw_call() const noexcept { return call_; }

protected:
    [[noreturn]] void missing(const char *member) const {
        std::string msg = "the host does not provide the '";
        msg += member;
        msg += "' service";
        if (host_ != nullptr) {
            msg += " (host ABI " + std::to_string(host_->abi_major) + '.' + std::to_string(host_->abi_minor) + ')';
        }
        throw ServiceUnavailable(msg);
    }

    static void check(th_status status, const char *op, const StringSink &err) {
        if (status == TH_OK) return;
        std::string msg = op;
        msg += " failed (";
        msg += status_name(status);
        msg += ')';
        if (!err.str().empty()) {
            msg += ": ";
            msg += err.str();
        }
        throw HostError(status, msg);
    }

    static json parse_output(const std::string &text, const char *op) {
        try {
            return json::parse(text);
        } catch (const json::exception &e) {
            throw HostError(TH_ERROR, std::string(op) + " returned invalid JSON: " + e.what());
        }
    }

    const th_host_api *host_;
    th_call *call_;
};

}  // namespace detail

#define TASKHOST_DETAIL_REQUIRE(member)                    \
    do {                                                   \
        if (!TH_HOST_HAS(host_, member)) missing(#member); \
    } while (0)

// Job context: identity, cooperative cancellation, progress and logging.
class Context : public detail::ServiceBase {
public:
    using ServiceBase::ServiceBase;

    // The job's ULID; empty during plugin init.
    std::string job_id() const {
        TASKHOST_DETAIL_REQUIRE(job_id);
        const char *id = host_->job_id(call_);
        return id != nullptr ? std::string(id) : std::string();
    }

    bool cancelled() const {
        TASKHOST_DETAIL_REQUIRE(is_cancelled);
        return host_->is_cancelled(call_) != 0;
    }

    // Call between units of work; throws Cancelled once cancellation was asked.
    void throw_if_cancelled() const {
        if (cancelled()) throw Cancelled();
    }

    // fraction in 0..1 (negative = unknown). An empty message is sent as NULL.
    void progress(double fraction, const std::string &message = "") const {
        TASKHOST_DETAIL_REQUIRE(report_progress);
        host_->report_progress(call_, fraction, message.empty() ? nullptr : message.c_str());
    }

    void log(LogLevel level, const std::string &message) const {
        TASKHOST_DETAIL_REQUIRE(log);
        host_->log(call_, static_cast<th_log_level>(level), message.c_str());
    }
    void debug(const std::string &message) const { log(LogLevel::debug, message); }
    void info(const std::string &message) const { log(LogLevel::info, message); }
    void warn(const std::string &message) const { log(LogLevel::warn, message); }
    void error(const std::string &message) const { log(LogLevel::error, message); }
};

// The artifact store (the guide's ArtifactManager).
class Artifacts : public detail::ServiceBase {
public:
    using ServiceBase::ServiceBase;

    // Stores any JSON value; returns the new artifact's ULID.
    std::string save(const json &data, std::optional<std::string> parent_id = {}) const {
        TASKHOST_DETAIL_REQUIRE(artifact_save);
        const std::string text = detail::to_json_text(data, "the artifact data");
        char id[27] = {};
        detail::StringSink err;
        check(host_->artifact_save(call_, text.data(), text.size(), parent_id ? parent_id->c_str() : nullptr, id,
                                   err.get()),
              "artifact_save", err);
        id[26] = '\0';  // never trust the other side to terminate
        return id;
    }

    // The artifact's full record (id, data, parent_id, level, ...). Throws
    // HostError with status TH_NOT_FOUND for an unknown id.
    json get(const std::string &id) const {
        TASKHOST_DETAIL_REQUIRE(artifact_get);
        detail::StringSink out, err;
        check(host_->artifact_get(call_, id.c_str(), out.get(), err.get()), "artifact_get", err);
        return parse_output(out.str(), "artifact_get");
    }
};

namespace detail {

// SQL on the host's database; shared by Database and Session.
class SqlService : public ServiceBase {
public:
    using ServiceBase::ServiceBase;

    // Rows as an array of objects (column name -> value). `params` is an
    // array of positional bind values.
    json query(const std::string &sql, const json &params = json::array()) const {
        TASKHOST_DETAIL_REQUIRE(db_query);
        if (!params.is_array() && !params.is_null())
            throw std::invalid_argument("SQL bind params must be a JSON array");
        const bool bind = params.is_array() && !params.empty();
        const std::string text = bind ? to_json_text(params, "the query parameters") : std::string();
        StringSink out, err;
        check(host_->db_query(call_, sql.c_str(), bind ? text.c_str() : nullptr, out.get(), err.get()), "db_query",
              err);
        if (out.str().empty()) return json::array();
        return parse_output(out.str(), "db_query");
    }

    // For statements whose rows (if any) are not needed.
    void exec(const std::string &sql, const json &params = json::array()) const { (void)query(sql, params); }
};

}  // namespace detail

// The host's database ("sqlite:///path" or "sqlite://:memory:").
class Database : public detail::SqlService {
public:
    using SqlService::SqlService;

    std::string url() const {
        TASKHOST_DETAIL_REQUIRE(database_url);
        const char *u = host_->database_url(call_);
        return u != nullptr ? std::string(u) : std::string();
    }
};

// A transaction scope on the database connection of this call. The SDK
// begins it before the task runs and commits when the task returns, or rolls
// it back when the task throws.
class Session : public detail::SqlService {
public:
    using SqlService::SqlService;

private:
    friend struct detail::SessionAccess;

    void begin() const {
        TASKHOST_DETAIL_REQUIRE(session_begin);
        TASKHOST_DETAIL_REQUIRE(session_end);  // checked now: no scope we could not close
        detail::StringSink err;
        check(host_->session_begin(call_, err.get()), "session_begin", err);
    }

    void end(bool commit) const {
        TASKHOST_DETAIL_REQUIRE(session_end);
        detail::StringSink err;
        check(host_->session_end(call_, commit ? 1 : 0, err.get()),
              commit ? "session_end(commit)" : "session_end(rollback)", err);
    }
};

// Submits other tasks as jobs and reads job records.
class Scheduler : public detail::ServiceBase {
public:
    using ServiceBase::ServiceBase;

    // Returns the new job's ULID.
    std::string submit(const std::string &task, const json &params = json::object()) const {
        TASKHOST_DETAIL_REQUIRE(schedule);
        const std::string text = detail::to_json_text(params, "the job's params");
        char id[27] = {};
        detail::StringSink err;
        check(host_->schedule(call_, task.c_str(), text.c_str(), id, err.get()), "schedule", err);
        id[26] = '\0';
        return id;
    }

    json job(const std::string &id) const {
        TASKHOST_DETAIL_REQUIRE(job_get);
        detail::StringSink out, err;
        check(host_->job_get(call_, id.c_str(), out.get(), err.get()), "job_get", err);
        return parse_output(out.str(), "job_get");
    }
};

#undef TASKHOST_DETAIL_REQUIRE

namespace detail {

struct SessionAccess {
    static void begin(const Session &s) { s.begin(); }
    static void end(const Session &s, bool commit) { s.end(commit); }
};

}  // namespace detail
}  // namespace taskhost
