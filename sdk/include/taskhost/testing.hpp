// taskhost test harness: unit-test a plugin's tasks in-process, without a
// host. It loads the built .so (or takes a descriptor), runs its init, and
// calls tasks by name with JSON params against fake host services:
//   Artifacts  kept in memory (ids, parents and levels as the host gives them)
//   Database   an SQLite database in memory, shared by every call (Session too)
//   Scheduler  records submitted jobs; run_scheduled() runs them
//   Context    cancellation you control, progress and log lines captured
//
//   #include <taskhost/testing.hpp>   // link taskhost::testing
//   auto plugin = taskhost::testing::Plugin::load("build/greeter.so");
//   auto run = plugin.call("greet_user", {{"name", "Ada"}});
//   CHECK(run.result == taskhost::json{{"message", "Hello, Ada!"}});
//
// The steps are the host's: params are checked first (the task's validate(),
// as the host does at submit: a failure is run.invalid_params and the task
// does not run), then the task is invoked. What the host itself adds (size
// limits, timeouts, JSON Schema checks for tasks without validate()) is not
// repeated here: test those against a real host.
#pragma once

#include <taskhost/abi.h>

#include <dlfcn.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace taskhost::testing {

using json = nlohmann::json;

struct TaskError {
    std::string type;     // e.g. "std::runtime_error"
    std::string message;  // what()
    std::string traceback;
};

struct Progress {
    double fraction;  // 0..1, or -1 when unknown
    std::string message;
};

struct LogLine {
    th_log_level level;
    std::string message;
};

// What one call did.
struct Run {
    std::optional<std::string> invalid_params;  // validate() refused: the task did not run (the host's 400)
    std::optional<json> result;                 // the task returned (json null for void)
    std::optional<TaskError> error;             // the task failed
    std::vector<Progress> progress;
    std::vector<LogLine> logs;
    std::string job_id;

    bool ok() const { return result.has_value(); }
};

struct CallOptions {
    // Asked by Context::cancelled(); return true to ask the task to stop.
    std::function<bool()> cancelled = {};
    std::string job_id = {};  // empty: a fresh id
};

// A job a task submitted through Scheduler.
struct ScheduledJob {
    std::string id;
    std::string task;
    json params;
    std::optional<Run> run;  // set once run_scheduled() ran it
};

namespace detail {

inline std::string crockford_id(uint64_t time_ms, uint64_t counter) {
    static constexpr char kDigits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    std::string id(26, '0');
    for (int i = 9; i >= 0; --i, time_ms >>= 5) id[static_cast<size_t>(i)] = kDigits[time_ms & 31];
    for (int i = 25; i >= 10 && counter != 0; --i, counter >>= 5) id[static_cast<size_t>(i)] = kDigits[counter & 31];
    return id;
}

// "2026-12-02T19:40:00.123Z", as the host writes timestamps.
inline std::string utc_now_text() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return text;
}

inline void write_to(th_sink *sink, std::string_view text) {
    if (sink != nullptr && sink->write != nullptr) sink->write(sink->opaque, text.data(), text.size());
}

inline th_sink string_sink(std::string &into) {
    return th_sink{&into, [](void *opaque, const char *data, size_t len) {
                       static_cast<std::string *>(opaque)->append(data, len);
                   }};
}

// The SQLite database behind Database and Session: one connection, one
// statement per query, rows as arrays of objects (as the host answers).
class MemoryDatabase {
public:
    MemoryDatabase() {
        if (sqlite3_open(":memory:", &db_) != SQLITE_OK) throw std::runtime_error("cannot open an SQLite database in memory");
    }
    ~MemoryDatabase() { sqlite3_close(db_); }
    MemoryDatabase(const MemoryDatabase &) = delete;
    MemoryDatabase &operator=(const MemoryDatabase &) = delete;

    json query(const std::string &sql, const json &params) {
        sqlite3_stmt *stmt = nullptr;
        const char *tail = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, &tail) != SQLITE_OK)
            throw std::invalid_argument(sqlite3_errmsg(db_));
        std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt *)> owned(stmt, sqlite3_finalize);
        if (stmt == nullptr) return json::array();
        if (tail != nullptr && std::string_view(tail).find_first_not_of(" \t\r\n;") != std::string_view::npos)
            throw std::invalid_argument("query accepts one SQL statement; run further statements with separate calls");
        const size_t given = params.is_array() ? params.size() : 0;
        if (given != static_cast<size_t>(sqlite3_bind_parameter_count(stmt)))
            throw std::invalid_argument("query expects " + std::to_string(sqlite3_bind_parameter_count(stmt)) +
                                        " parameter(s), got " + std::to_string(given));
        for (size_t i = 0; i < given; ++i) bind(stmt, static_cast<int>(i + 1), params[i]);
        json rows = json::array();
        for (int rc; (rc = sqlite3_step(stmt)) != SQLITE_DONE;) {
            if (rc != SQLITE_ROW) throw std::invalid_argument(sqlite3_errmsg(db_));
            json row = json::object();
            for (int c = 0; c < sqlite3_column_count(stmt); ++c) row[sqlite3_column_name(stmt, c)] = column(stmt, c);
            rows.push_back(std::move(row));
        }
        return rows;
    }

    bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

private:
    static void bind(sqlite3_stmt *stmt, int i, const json &v) {
        if (v.is_null()) sqlite3_bind_null(stmt, i);
        else if (v.is_boolean()) sqlite3_bind_int(stmt, i, v.get<bool>() ? 1 : 0);
        else if (v.is_number_integer()) sqlite3_bind_int64(stmt, i, v.get<int64_t>());
        else if (v.is_number()) sqlite3_bind_double(stmt, i, v.get<double>());
        else {
            const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
            sqlite3_bind_text(stmt, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
        }
    }
    static json column(sqlite3_stmt *stmt, int c) {
        switch (sqlite3_column_type(stmt, c)) {
            case SQLITE_INTEGER: return sqlite3_column_int64(stmt, c);
            case SQLITE_FLOAT: return sqlite3_column_double(stmt, c);
            case SQLITE_NULL: return nullptr;
            case SQLITE_BLOB: return base64(sqlite3_column_blob(stmt, c), sqlite3_column_bytes(stmt, c));
            default:
                return std::string(reinterpret_cast<const char *>(sqlite3_column_text(stmt, c)),
                                   static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
        }
    }
    // BLOB columns come back as base64 text, as the host answers them.
    static std::string base64(const void *data, int size) {
        static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const auto *p = static_cast<const unsigned char *>(data);
        std::string out;
        for (int i = 0; i < size; i += 3) {
            const int left = size - i;
            const uint32_t v = (uint32_t{p[i]} << 16) | (left > 1 ? uint32_t{p[i + 1]} << 8 : 0) | (left > 2 ? p[i + 2] : 0);
            for (int k = 0; k < 4; ++k) out += k <= left ? kDigits[(v >> (18 - 6 * k)) & 63] : '=';
        }
        return out;
    }

    sqlite3 *db_ = nullptr;
};

}  // namespace detail

// A plugin under test. Not thread-safe: call tasks from one thread at a time.
class Plugin {
public:
    // dlopen()s the built plugin and runs its init(); throws
    // std::runtime_error saying why it would be refused.
    static Plugin load(const std::string &path) {
        void *library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (library == nullptr) throw std::runtime_error(path + ": " + ::dlerror());
        auto entry = reinterpret_cast<th_plugin_entry_fn>(::dlsym(library, TH_PLUGIN_ENTRY_NAME));
        if (entry == nullptr) {
            ::dlclose(library);
            throw std::runtime_error(path + ": no entry symbol " TH_PLUGIN_ENTRY_NAME ": not a taskhost plugin");
        }
        return Plugin(entry(), library);
    }

    // A descriptor built in this process (taskhost::build_plugin<Tag>(...)).
    static Plugin from_descriptor(const th_plugin_desc *desc) { return Plugin(desc, nullptr); }

    std::string name() const { return desc_->name != nullptr ? desc_->name : ""; }
    std::string version() const { return desc_->version != nullptr ? desc_->version : ""; }
    std::vector<std::string> task_names() const {
        std::vector<std::string> names;
        for (uint32_t i = 0; i < desc_->task_count; ++i) names.emplace_back(task_at(i).name);
        return names;
    }
    // The JSON Schema the task declares for its params object.
    json params_schema(const std::string &task) const {
        const th_task_desc &t = find(task);
        return t.params_schema_json != nullptr ? json::parse(t.params_schema_json) : json(nullptr);
    }

    // Checks params as the host does at submit: the validate() message, or nothing.
    std::optional<std::string> validate(const std::string &task, const json &params = json::object()) const {
        const th_task_desc &t = find(task);
        if (!TH_DESC_HAS(&t, th_task_desc, validate) || t.validate == nullptr) return std::nullopt;
        const std::string text = params.dump();
        std::string why;
        th_sink err = detail::string_sink(why);
        if (t.validate(text.data(), text.size(), &err) == TH_OK) return std::nullopt;
        return why.empty() ? std::string("invalid params") : why;
    }

    // Validates, then runs the task to its end on this thread.
    Run call(const std::string &task, const json &params = json::object(), CallOptions options = {}) {
        const th_task_desc &t = find(task);
        Run run;
        run.job_id = options.job_id.empty() ? next_id() : options.job_id;
        if (auto invalid = validate(task, params)) {
            run.invalid_params = std::move(*invalid);
            return run;
        }
        Call call{*this, &run, std::move(options.cancelled), std::nullopt};
        const std::string text = params.dump();
        const th_status status = t.invoke(&api_, call.handle(), text.data(), text.size());
        if (call.harness_failure) {
            run.result.reset();
            run.error = TaskError{"taskhost::testing::HarnessError",
                                  "a host callback of the harness failed: " + *call.harness_failure, ""};
        }
        if (session_open()) state_->database.query("ROLLBACK", json::array());  // a session left open is undone
        if (!run.result && !run.error)
            run.error = TaskError{"taskhost::NoResult",
                                  std::string("the task returned ") + (status == TH_OK ? "TH_OK" : "an error") +
                                      " without reporting a result or an error",
                                  ""};
        return run;
    }

    // SQL on the plugin's in-memory database, e.g. to seed or inspect tables.
    json sql(const std::string &statement, const json &params = json::array()) {
        return state_->database.query(statement, params);
    }

    // Artifacts saved so far, by id: each the record artifact_get answers.
    const std::map<std::string, json> &artifacts() const { return state_->artifacts; }
    // Saves an artifact as a task would (e.g. a parent for one under test).
    std::string save_artifact(const json &data, const std::optional<std::string> &parent_id = {}) {
        return store_artifact(data, parent_id ? parent_id->c_str() : nullptr);
    }

    // Jobs the tasks submitted, in order.
    std::vector<ScheduledJob> &scheduled() { return state_->scheduled; }
    // Runs every submitted job not run yet (and those they submit), in order.
    void run_scheduled() {
        for (size_t i = 0; i < state_->scheduled.size(); ++i) {
            if (state_->scheduled[i].run) continue;
            const ScheduledJob job = state_->scheduled[i];
            Run done = call(job.task, job.params, CallOptions{{}, job.id});
            state_->scheduled[i].run = std::move(done);
        }
    }

    // Log lines written by init().
    const std::vector<LogLine> &init_logs() const { return state_->init_logs; }

private:
    struct State {
        detail::MemoryDatabase database;
        std::map<std::string, json> artifacts;
        std::vector<ScheduledJob> scheduled;
        std::vector<LogLine> init_logs;
        uint64_t ids = 0;
        std::shared_ptr<void> library;  // closed last
        void (*shutdown)() = nullptr;    // owed once init succeeded: called, as the host does, before the close
        State() = default;
        State(const State &) = delete;
        State &operator=(const State &) = delete;
        ~State() {
            if (shutdown != nullptr) shutdown();
        }
    };

    // One invocation: what th_call points at.
    struct Call {
        Plugin &plugin;
        Run *run;  // null during init
        std::function<bool()> cancelled;
        std::optional<std::string> harness_failure;  // a callback of ours threw
        th_call *handle() { return reinterpret_cast<th_call *>(this); }
        static Call &of(th_call *call) { return *reinterpret_cast<Call *>(call); }
    };

    Plugin(const th_plugin_desc *desc, void *library) : state_(std::make_shared<State>()), desc_(desc) {
        if (library != nullptr) state_->library = std::shared_ptr<void>(library, [](void *l) { ::dlclose(l); });
        if (desc_ == nullptr) throw std::runtime_error("the entry symbol returned no descriptor");
        if (desc_->magic != TH_ABI_MAGIC || desc_->abi_major != TH_ABI_MAJOR)
            throw std::runtime_error("not a plugin of this SDK's ABI (" + std::to_string(TH_ABI_MAJOR) + ".x)");
        if (TH_DESC_HAS(desc_, th_plugin_desc, declaration_error) && desc_->declaration_error != nullptr)
            throw std::runtime_error(std::string("the plugin would be refused: invalid declaration: ") +
                                     desc_->declaration_error);
        if (desc_->struct_size < TH_PLUGIN_DESC_MIN_SIZE ||
            (desc_->task_count > 0 && (desc_->tasks == nullptr || desc_->tasks[0].struct_size < TH_TASK_DESC_MIN_SIZE)))
            throw std::runtime_error("the plugin would be refused: its descriptor or task table is too small");
        fill_api();
        if (TH_DESC_HAS(desc_, th_plugin_desc, init) && desc_->init != nullptr) {
            Call call{*this, nullptr, {}, std::nullopt};
            std::string why;
            th_sink err = detail::string_sink(why);
            if (desc_->init(&api_, call.handle(), &err) != TH_OK)
                throw std::runtime_error("the plugin would be refused: " + (why.empty() ? "init() failed" : why));
            if (call.harness_failure)
                throw std::runtime_error("a host callback of the harness failed during init: " + *call.harness_failure);
        }
        if (TH_DESC_HAS(desc_, th_plugin_desc, shutdown)) state_->shutdown = desc_->shutdown;
    }

    // Descriptors are read at the stride the plugin declares, as the host does.
    const th_task_desc &task_at(uint32_t i) const {
        const auto *base = reinterpret_cast<const char *>(desc_->tasks);
        return *reinterpret_cast<const th_task_desc *>(base + static_cast<size_t>(i) * desc_->tasks[0].struct_size);
    }
    const th_task_desc &find(const std::string &task) const {
        for (uint32_t i = 0; i < desc_->task_count; ++i)
            if (task_at(i).name != nullptr && task == task_at(i).name) return task_at(i);
        throw std::invalid_argument("plugin '" + name() + "' has no task '" + task + "'");
    }

    std::string next_id() {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch());
        return detail::crockford_id(static_cast<uint64_t>(ms.count()), ++state_->ids);
    }

    bool session_open() const { return state_->database.in_transaction(); }

    std::string store_artifact(const json &data, const char *parent_id) {
        int level = 0;
        if (parent_id != nullptr) {
            auto parent = state_->artifacts.find(parent_id);
            if (parent == state_->artifacts.end())
                throw std::out_of_range(std::string("parent artifact ") + parent_id + " not found");
            level = parent->second["level"].get<int>() + 1;
        }
        const std::string id = next_id();
        const std::string now = detail::utc_now_text();
        state_->artifacts[id] = json{{"id", id},
                                     {"created_at", now},
                                     {"updated_at", now},
                                     {"tags", json::array()},
                                     {"data", data},
                                     {"parent_id", parent_id ? json(parent_id) : json(nullptr)},
                                     {"level", level}};
        return id;
    }

    // Runs `fn` and turns what it throws into the status a host answers.
    template <class Fn>
    static th_status guarded(th_sink *err, Fn &&fn) noexcept {
        try {
            fn();
            return TH_OK;
        } catch (const std::out_of_range &e) {
            detail::write_to(err, e.what());
            return TH_NOT_FOUND;
        } catch (const std::exception &e) {
            detail::write_to(err, e.what());
            return TH_INVALID;
        } catch (...) {
            detail::write_to(err, "unknown exception");
            return TH_ERROR;
        }
    }

    // For the callbacks without a status to answer: nothing may cross back
    // into the plugin (C code has no unwind tables), so what `fn` throws
    // (a CallOptions::cancelled that throws, bad_alloc) fails the call
    // after invoke() returns.
    template <class Fn>
    static auto shielded(th_call *c, Fn &&fn) noexcept -> decltype(fn()) {
        try {
            return fn();
        } catch (const std::exception &e) {
            Call::of(c).harness_failure = e.what();
        } catch (...) {
            Call::of(c).harness_failure = "unknown exception";
        }
        return decltype(fn())();
    }

    static void set_result(th_call *c, const char *text, size_t len) {
        Run *run = Call::of(c).run;
        if (run == nullptr) return;
        run->error.reset();
        try {
            run->result = json::parse(std::string_view(text != nullptr ? text : "null", text != nullptr ? len : 4));
        } catch (const json::exception &e) {
            run->result.reset();
            run->error = TaskError{"taskhost::InvalidResult", std::string("not valid JSON: ") + e.what(), ""};
        }
    }

    void fill_api() {
        api_.struct_size = sizeof(th_host_api);
        api_.abi_major = TH_ABI_MAJOR;
        api_.abi_minor = TH_ABI_MINOR;
        api_.set_result = [](th_call *c, const char *text, size_t len) noexcept {
            shielded(c, [&] { set_result(c, text, len); });
        };
        api_.set_error = [](th_call *c, const char *type, const char *message, const char *traceback) noexcept {
            shielded(c, [&] {
                Run *run = Call::of(c).run;
                if (run == nullptr) return;
                run->result.reset();
                run->error = TaskError{type ? type : "", message ? message : "", traceback ? traceback : ""};
            });
        };
        api_.job_id = [](th_call *c) noexcept {
            return Call::of(c).run != nullptr ? Call::of(c).run->job_id.c_str() : "";
        };
        api_.is_cancelled = [](th_call *c) noexcept {
            const int asked = shielded(c, [&] {
                const Call &call = Call::of(c);
                return call.cancelled && call.cancelled() ? 1 : 0;
            });
            return Call::of(c).harness_failure ? 1 : asked;  // the call has failed: let the task stop
        };
        api_.report_progress = [](th_call *c, double fraction, const char *message) noexcept {
            shielded(c, [&] {
                if (Run *run = Call::of(c).run)
                    run->progress.push_back({fraction >= 0 ? std::min(fraction, 1.0) : -1.0, message ? message : ""});
            });
        };
        api_.log = [](th_call *c, th_log_level level, const char *message) noexcept {
            shielded(c, [&] {
                Call &call = Call::of(c);
                (call.run != nullptr ? call.run->logs : call.plugin.state_->init_logs)
                    .push_back({level, message ? message : ""});
            });
        };
        api_.artifact_save = [](th_call *c, const char *data, size_t len, const char *parent_id, char out_id[27],
                                th_sink *err) {
            return guarded(err, [&] {
                const std::string id = Call::of(c).plugin.store_artifact(json::parse(std::string_view(data, len)),
                                                                         parent_id != nullptr && *parent_id ? parent_id : nullptr);
                std::memcpy(out_id, id.c_str(), 27);
            });
        };
        api_.artifact_get = [](th_call *c, const char *id, th_sink *out, th_sink *err) {
            return guarded(err, [&] {
                const auto &all = Call::of(c).plugin.state_->artifacts;
                auto found = all.find(id != nullptr ? id : "");
                if (found == all.end()) throw std::out_of_range(std::string("artifact ") + (id ? id : "") + " not found");
                detail::write_to(out, found->second.dump());
            });
        };
        api_.db_query = [](th_call *c, const char *sql, const char *params, th_sink *out, th_sink *err) {
            return guarded(err, [&] {
                const json bind = params != nullptr && *params ? json::parse(params) : json::array();
                detail::write_to(out, Call::of(c).plugin.state_->database.query(sql != nullptr ? sql : "", bind).dump());
            });
        };
        api_.session_begin = [](th_call *c, th_sink *err) {
            return guarded(err, [&] { Call::of(c).plugin.state_->database.query("BEGIN IMMEDIATE", json::array()); });
        };
        api_.session_end = [](th_call *c, int commit, th_sink *err) {
            return guarded(err, [&] {
                Plugin &plugin = Call::of(c).plugin;
                if (plugin.session_open()) plugin.state_->database.query(commit ? "COMMIT" : "ROLLBACK", json::array());
            });
        };
        api_.database_url = [](th_call *) { return "sqlite://:memory:"; };
        api_.schedule = [](th_call *c, const char *task, const char *params, char out_id[27], th_sink *err) {
            Call &call = Call::of(c);
            if (call.run == nullptr) {
                detail::write_to(err, "the scheduler is not running");
                return TH_UNSUPPORTED;
            }
            return guarded(err, [&] {
                Plugin &plugin = call.plugin;
                const std::string name = task != nullptr ? task : "";
                const json body = params != nullptr && *params ? json::parse(params) : json::object();
                try {
                    plugin.find(name);
                } catch (const std::invalid_argument &) {
                    throw std::out_of_range("task '" + name + "' not found");
                }
                if (auto invalid = plugin.validate(name, body)) throw std::invalid_argument(*invalid);
                ScheduledJob job{plugin.next_id(), name, body, std::nullopt};
                std::memcpy(out_id, job.id.c_str(), 27);
                plugin.state_->scheduled.push_back(std::move(job));
            });
        };
        api_.job_get = [](th_call *c, const char *id, th_sink *out, th_sink *err) {
            return guarded(err, [&] {
                for (const ScheduledJob &job : Call::of(c).plugin.state_->scheduled) {
                    if (job.id != (id != nullptr ? id : "")) continue;
                    const char *status = !job.run ? "pending" : job.run->ok() ? "completed" : "failed";
                    detail::write_to(out, json{{"id", job.id}, {"task_name", job.task}, {"params", job.params},
                                               {"status", status}}.dump());
                    return;
                }
                throw std::out_of_range(std::string("job ") + (id ? id : "") + " not found");
            });
        };
    }

    std::shared_ptr<State> state_;
    const th_plugin_desc *desc_;
    th_host_api api_{};
};

}  // namespace taskhost::testing
