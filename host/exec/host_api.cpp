#include "exec/host_api.hpp"

#include <dlfcn.h>

#include <cstring>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "exec/traceback.hpp"
#include "exec/worker_protocol.hpp"
#include "model/render.hpp"
#include "util/ulid.hpp"

namespace taskhost::exec {

namespace {

void write(th_sink *sink, std::string_view text) {
    if (sink != nullptr && sink->write != nullptr) sink->write(sink->opaque, text.data(), text.size());
}

// Writes why to the plugin's error sink and returns the status to answer.
th_status refuse(th_sink *err, th_status status, std::string_view message) {
    write(err, message);
    return status;
}

void copy_id(char out[27], const std::string &id) {
    std::memcpy(out, id.data(), std::min<size_t>(id.size(), 26));
    out[std::min<size_t>(id.size(), 26)] = '\0';
}

// The ABI's status for an Error of the layers behind a service: any
// failure but a missing thing is the call's (TH_INVALID), as the SDK has
// always been told.
th_status status_of(const Error &error) {
    return error.kind == ErrorKind::not_found ? TH_NOT_FOUND : TH_INVALID;
}

// Lends the call a database connection on first use; returned when the call ends.
store::TaskConnection &connection(th_call *call) {
    if (!call->conn) call->conn = call->host->checkout_connection();
    return *call->conn;
}

template <typename Fn>
th_status guarded(th_sink *err, Fn &&fn) {
    try {
        return fn();
    } catch (const store::StoreError &e) {
        return refuse(err, status_of(e.error()), e.what());
    } catch (const std::exception &e) {
        return refuse(err, TH_ERROR, e.what());
    }
}

// Why `text` is not JSON: where the parser stopped (the slow path; valid
// text is only checked, never parsed into a tree).
std::string json_problem(std::string_view text) {
    try {
        const auto parsed = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception &e) {
        std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
        if (const auto end = what.find("] "); end != std::string::npos) what.erase(0, end + 2);
        return what;
    }
    return "unknown error";
}

std::string size_text(size_t bytes) { return std::to_string(bytes) + " bytes"; }

void fail_result(th_call *call, const char *type, std::string message) {
    call->outcome.has_error = true;
    call->outcome.has_result = false;
    call->outcome.result_json.clear();
    call->outcome.error_type = type;
    call->outcome.error_message = std::move(message);
    call->outcome.error_traceback.clear();
}

void api_set_result(th_call *call, const char *json, size_t len) {
    std::string_view text(json ? json : "null", json ? len : 4);
    if (text.size() > call->host->max_result_bytes())
        return fail_result(call, "taskhost::ResultTooLarge",
                           "the result is " + size_text(text.size()) + ", more than the host accepts (" +
                               size_text(call->host->max_result_bytes()) + ", --max-result-bytes)");
    if (!nlohmann::json::accept(text))
        return fail_result(call, "taskhost::InvalidResult",
                           "the task returned text that is not valid JSON: " + json_problem(text));
    call->outcome.has_result = true;
    call->outcome.has_error = false;
    call->outcome.result_json.assign(text);
}

void api_set_error(th_call *call, const char *type, const char *message, const char *traceback) {
    call->outcome.has_error = true;
    call->outcome.has_result = false;
    call->outcome.error_type = type ? type : "";
    call->outcome.error_message = message ? message : "";
    call->outcome.error_traceback = traceback ? traceback : "";
    call->outcome.error_final = false;
}

// Beyond this many frames a report is not a stack the SDK captured.
constexpr size_t max_reported_frames = 256;

void api_set_error_frames(th_call *call, const char *type, const char *message, const th_frame *frames,
                          size_t frame_count, uint32_t flags) {
    std::string traceback;
    try {
        TracebackReport report;
        report.type = type ? type : "";
        report.message = message ? message : "";
        report.at_throw = (flags & TH_TRACE_AT_THROW) != 0;
        for (size_t i = 0; frames != nullptr && i < std::min(frame_count, max_reported_frames); ++i)
            report.frames.push_back({frames[i].module ? frames[i].module : "",
                                     frames[i].build_id ? frames[i].build_id : "", frames[i].offset});
        // The plugin was loaded from a sealed copy (/proc/self/fd/N): the
        // loader names it so, people by its file name. That name is also an
        // open file of this process while the call runs, the exact bytes
        // loaded, so its debug info is read from there.
        Dl_info loaded{};
        std::string image_path;
        if (call->target != nullptr && !call->target->in_process && call->target->image_fd >= 0) {
            // Thrown in a worker process: its loader names the image by the
            // worker's fd; the host reads the same bytes through its own.
            report.plugin_module = worker::worker_image_path;
            image_path = "/proc/self/fd/" + std::to_string(call->target->image_fd);
            report.plugin_image = image_path;
            report.plugin_file = call->target->file;
        } else if (call->target != nullptr && call->target->desc != nullptr &&
                   call->target->desc->invoke != nullptr &&
                   ::dladdr(reinterpret_cast<void *>(call->target->desc->invoke), &loaded) != 0 &&
                   loaded.dli_fname != nullptr) {
            report.plugin_module = loaded.dli_fname;
            report.plugin_file = call->target->file;
        }
        traceback = render_traceback(report);
    } catch (const std::exception &e) {
        traceback = std::string("(the traceback could not be rendered: ") + e.what() + ")";
    }
    api_set_error(call, type, message, traceback.c_str());
    call->outcome.error_final = (flags & TH_ERROR_FINAL) != 0;
}

const char *api_job_id(th_call *call) { return call->job_id.c_str(); }

int api_is_cancelled(th_call *call) { return call->job != nullptr && call->job->cancelled(); }

void api_report_progress(th_call *call, double fraction, const char *message) {
    if (call->job == nullptr) return;
    if (!(fraction >= 0)) fraction = -1;  // unknown (also catches NaN)
    if (fraction > 1) fraction = 1;
    call->job->progress(fraction, message ? message : "");
}

void api_log(th_call *call, th_log_level level, const char *message) {
    static constexpr spdlog::level::level_enum levels[] = {
        spdlog::level::trace, spdlog::level::debug, spdlog::level::info, spdlog::level::warn, spdlog::level::err};
    auto lvl = level >= TH_LOG_TRACE && level <= TH_LOG_ERROR ? levels[level] : spdlog::level::info;
    if (call->job_id.empty()) spdlog::log(lvl, "[{}] {}", call->log_name, message ? message : "");
    else spdlog::log(lvl, "[{} job {}] {}", call->log_name, call->job_id, message ? message : "");
}

th_status api_artifact_save(th_call *call, const char *data_json, size_t len, const char *parent_id, char out_id[27],
                            th_sink *err) {
    return guarded(err, [&] {
        std::string_view data(data_json ? data_json : "", data_json ? len : 0);
        if (data.size() > call->host->max_result_bytes())
            return refuse(err, TH_INVALID,
                        "artifact data is " + size_text(data.size()) + ", more than the host accepts (" +
                            size_text(call->host->max_result_bytes()) + ", --max-result-bytes)");
        if (!nlohmann::json::accept(data))
            return refuse(err, TH_INVALID, "artifact data is not valid JSON: " + json_problem(data));
        model::ArtifactInput input;
        input.data_json = std::string(data);
        if (parent_id != nullptr && *parent_id != '\0') {
            if (!is_valid_ulid(parent_id)) return refuse(err, TH_INVALID, std::string("invalid parent id: ") + parent_id);
            input.parent_id = parent_id;
        }
        auto saved = call->host->store().save_artifact(input);
        copy_id(out_id, saved.id);
        return TH_OK;
    });
}

th_status api_artifact_get(th_call *call, const char *id, th_sink *out, th_sink *err) {
    return guarded(err, [&] {
        if (id == nullptr || !is_valid_ulid(id)) return refuse(err, TH_INVALID, "invalid artifact id");
        auto artifact = call->host->store().get_artifact(id);
        if (!artifact) return refuse(err, TH_NOT_FOUND, std::string("artifact ") + id + " not found");
        write(out, model::render_artifact(*artifact));
        return TH_OK;
    });
}

th_status api_db_query(th_call *call, const char *sql, const char *params_json, th_sink *out, th_sink *err) {
    return guarded(err, [&] {
        if (sql == nullptr) return refuse(err, TH_INVALID, "sql is NULL");
        write(out, connection(call).query(sql, params_json ? params_json : ""));
        return TH_OK;
    });
}

th_status api_session_begin(th_call *call, th_sink *err) {
    return guarded(err, [&] {
        connection(call).begin();
        return TH_OK;
    });
}

th_status api_session_end(th_call *call, int commit, th_sink *err) {
    return guarded(err, [&] {
        auto &conn = connection(call);
        if (!conn.in_transaction()) return TH_OK;
        if (commit) conn.commit();
        else conn.rollback();
        return TH_OK;
    });
}

const char *api_database_url(th_call *call) { return call->host->store().url().c_str(); }

th_status api_schedule(th_call *call, const char *task_name, const char *params_json, char out_job_id[27],
                       th_sink *err) {
    return guarded(err, [&] {
        if (call->job == nullptr) return refuse(err, TH_UNSUPPORTED, "the scheduler is not running");
        auto job_id = call->job->schedule(task_name ? task_name : "", params_json ? params_json : "");
        if (!job_id) return refuse(err, status_of(job_id.error()), job_id.error().message);
        copy_id(out_job_id, *job_id);
        return TH_OK;
    });
}

th_status api_job_get(th_call *call, const char *job_id, th_sink *out, th_sink *err) {
    return guarded(err, [&] {
        if (call->job == nullptr) return refuse(err, TH_UNSUPPORTED, "the scheduler is not running");
        auto json = call->job->job_json(job_id ? job_id : "");
        if (!json) return refuse(err, status_of(json.error()), json.error().message);
        write(out, *json);
        return TH_OK;
    });
}

}  // namespace

th_sink string_sink(std::string &out) {
    return th_sink{&out, [](void *opaque, const char *data, size_t len) {
                       if (data != nullptr) static_cast<std::string *>(opaque)->append(data, len);
                   }};
}

HostApi::HostApi(store::Store &store, size_t max_result_bytes) : store_(store), max_result_bytes_(max_result_bytes) {
    api_.struct_size = sizeof(th_host_api);
    api_.abi_major = TH_ABI_MAJOR;
    api_.abi_minor = TH_ABI_MINOR;
    api_.set_result = api_set_result;
    api_.set_error = api_set_error;
    api_.job_id = api_job_id;
    api_.is_cancelled = api_is_cancelled;
    api_.report_progress = api_report_progress;
    api_.log = api_log;
    api_.artifact_save = api_artifact_save;
    api_.artifact_get = api_artifact_get;
    api_.db_query = api_db_query;
    api_.session_begin = api_session_begin;
    api_.session_end = api_session_end;
    api_.database_url = api_database_url;
    api_.schedule = api_schedule;
    api_.job_get = api_job_get;
    api_.set_error_frames = api_set_error_frames;
}

HostApi::~HostApi() = default;

std::unique_ptr<store::TaskConnection> HostApi::checkout_connection() {
    {
        std::lock_guard lock(pool_mu_);
        if (!pool_.empty()) {
            auto conn = std::move(pool_.back());
            pool_.pop_back();
            return conn;
        }
    }
    return store_.task_connection();
}

void HostApi::checkin_connection(std::unique_ptr<store::TaskConnection> conn) {
    try {
        // A task that left a transaction open must not leak it to the next one.
        if (conn->in_transaction()) conn->rollback();
    } catch (const std::exception &e) {
        spdlog::warn("dropping a task database connection: {}", e.what());
        return;
    }
    std::lock_guard lock(pool_mu_);
    pool_.push_back(std::move(conn));
}

void HostApi::open_call(th_call &call, const Target &target, const std::string &job_id, JobContext *job) {
    call.host = this;
    call.job = job;
    call.job_id = job_id;
    call.target = &target;
    call.log_name.append(target.plugin).append("/").append(target.task);
}

model::TaskOutcome HostApi::close_call(th_call &call, th_status status) {
    if (status != TH_OK && !call.outcome.has_error) {
        call.outcome.has_error = true;
        call.outcome.has_result = false;
        call.outcome.error_type = "taskhost::TaskError";
        call.outcome.error_message = "the task reported failure without a message";
    }
    if (call.conn) checkin_connection(std::move(call.conn));
    return std::move(call.outcome);
}

model::TaskOutcome HostApi::invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                                   JobContext &job) {
    th_call call;
    open_call(call, target, job_id, &job);
    const th_status status = target.desc->invoke(&api_, &call, params_json.data(), params_json.size());
    return close_call(call, status);
}

Result<void> HostApi::run_init(const th_plugin_desc &desc, const std::string &file) {
    if (desc.init == nullptr) return {};
    th_call call;
    call.host = this;
    call.log_name = file;
    std::string error;
    th_sink err = string_sink(error);
    th_status status = desc.init(&api_, &call, &err);
    if (call.conn) checkin_connection(std::move(call.conn));
    if (status == TH_OK) return {};
    return fail(ErrorKind::invalid, error.empty() ? "init returned an error without a message" : error);
}

}  // namespace taskhost::exec
