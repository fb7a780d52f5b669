// Request handlers, grouped by resource (api_tasks.cpp, api_jobs.cpp,
// api_artifacts.cpp, api_system.cpp). Internal to http/.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "http/openapi.hpp"
#include "http/server.hpp"
#include "jobs/fleet_tasks.hpp"

namespace taskhost::http {

// Path split on '/', without the leading "api/v1" where present.
using Segments = std::vector<std::string_view>;

// A query parameter's value ("" when absent); given more than once, the
// last one counts, as in the original.
inline std::string query_param(const httplib::Request &req, const char *name) {
    const size_t count = req.get_param_value_count(name);
    return count ? req.get_param_value(name, count - 1) : std::string();
}

class Api {
public:
    Api(const ServerOptions &options, Services services);

    // Returns false if no route matches the path at all (→ 404); a path that
    // matches with another method sets 405 itself.
    bool dispatch(const httplib::Request &req, httplib::Response &res);

    // tasks
    void list_tasks(const httplib::Request &req, httplib::Response &res);
    void get_task(const httplib::Request &req, httplib::Response &res, std::string_view name);
    void execute_task(const httplib::Request &req, httplib::Response &res, std::string_view name);
    // jobs
    void list_jobs(const httplib::Request &req, httplib::Response &res);
    // DELETE /api/v1/jobs?finished_before=...[&status_filter=...]
    void delete_jobs(const httplib::Request &req, httplib::Response &res);
    void get_job(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void delete_job(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void cancel_job(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void stream_job(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void job_schema(const httplib::Request &req, httplib::Response &res);
    // artifacts
    void list_artifacts(const httplib::Request &req, httplib::Response &res);
    void create_artifact(const httplib::Request &req, httplib::Response &res);
    void artifact_stats(const httplib::Request &req, httplib::Response &res);
    void artifact_schema(const httplib::Request &req, httplib::Response &res);
    void get_artifact(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void update_artifact(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void delete_artifact(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void artifact_tree(const httplib::Request &req, httplib::Response &res, std::string_view id, bool expand_only);
    // recurring schedules
    void list_schedules(const httplib::Request &req, httplib::Response &res);
    void create_schedule(const httplib::Request &req, httplib::Response &res);
    void get_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void update_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void delete_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id);
    void trigger_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id);
    // system
    void health(const httplib::Request &req, httplib::Response &res);
    void health_stream(const httplib::Request &req, httplib::Response &res);
    void info(const httplib::Request &req, httplib::Response &res);
    void system(const httplib::Request &req, httplib::Response &res);
    void system_hosts(const httplib::Request &req, httplib::Response &res);
    // The built-in web apps (the console), or with `schema` their JSON Schema.
    void system_apps(const httplib::Request &req, httplib::Response &res, bool schema);
    void plugins(const httplib::Request &req, httplib::Response &res);
    void reload_plugins(const httplib::Request &req, httplib::Response &res);
    // Prometheus text format: jobs by task, HTTP responses, store, plugins, process.
    void metrics(const httplib::Request &req, httplib::Response &res);
    void ping(const httplib::Request &req, httplib::Response &res);
    // The OpenAPI document (the console's /docs page renders it).
    void openapi(const httplib::Request &req, httplib::Response &res);
    // /console/settings.json: what the console needs to know of this host
    // (its name and version, and the API key header when keys are on).
    void console_settings(const httplib::Request &req, httplib::Response &res);

    const ServerOptions &options() const { return options_; }

    // Shutdown: ends every open stream (health and job $stream) and answers
    // every ?wait long-poll now, instead of holding shutdown back until
    // their next event or deadline.
    void stop_streams();

    // ?page=&size= or ?limit=&offset= ; false (and a 400 in res) if malformed
    // or out of range: limit and size 1..max_page_size, offset 0..kMaxOffset,
    // page 1.. as far as (page - 1) * size stays within kMaxOffset (and page too).
    static constexpr size_t kMaxOffset = INT64_MAX;  // SQLite's OFFSET is a signed 64-bit integer
    struct Paging {
        bool paged_object = false;  // page & size given: answer {items,total,page,size,pages}
        size_t limit = 0, offset = 0, page = 0, size = 0;
    };

private:
    bool parse_paging(const httplib::Request &req, httplib::Response &res, Paging &out) const;
    // ?poll_interval=SECONDS (0 < S <= kMaxPollInterval), left as is when
    // absent; false (and a 400) if malformed or out of range.
    static constexpr double kMaxPollInterval = 86400;
    bool parse_poll_interval(const httplib::Request &req, httplib::Response &res, double &out) const;
    // ?wait=SECONDS; nullopt when absent; false (and a 400) if malformed.
    bool parse_wait(const httplib::Request &req, httplib::Response &res, std::optional<double> &out) const;
    // A job that ended within ?wait: its record with its artifact inlined.
    void finished_job_response(httplib::Response &res, const jobs::JobView &job);

    // The body of GET /health.
    std::string health_json() const;
    // Waits until `until`; false at once when the streams are stopping or
    // `abandon` is stopped.
    bool wait_for_next_event(std::chrono::steady_clock::time_point until, std::stop_token abandon);

    // A place among the --max-waiters long-polls and streams, held until
    // it is destroyed; null (and a 503 in res) when all are taken.
    struct WaiterSlot;
    std::shared_ptr<WaiterSlot> take_waiter_slot(const httplib::Request &req, httplib::Response &res);
    std::atomic<size_t> waiters_{0};
    bool streams_stopping();

    const ServerOptions &options_;
    Services s_;
    const ServiceIdentity identity_;
    const ApiDocument document_;
    std::mutex streams_mu_;
    std::condition_variable streams_cv_;
    bool streams_stopping_ = false;  // guarded by streams_mu_
};

// Stopped when the client of the request this thread serves hangs up.
std::stop_token client_hangup();

// Parses the request body as JSON. An empty body gives null. On malformed
// or too deeply nested input answers 400 and returns false.
bool parse_json_body(const httplib::Request &req, httplib::Response &res, nlohmann::json &out);

// Answers a bounded list (`items`: a JSON array of `returned` items): the
// array itself, with `Link: <next page>; rel="next"` when it came back full;
// or, for ?page=&size=, the paged object {items, total, page, size, pages}.
// `filter` is the query before the paging ("status_filter=x&" or "").
void list_response(httplib::Response &res, const std::string &path, const std::string &filter,
                   const Api::Paging &paging, std::string items, size_t returned, const std::function<size_t()> &total);

// An absolute URL of `path` as the client reached the host: through a
// proxy, the scheme and host it names (deploy/nginx sets both).
std::string absolute_url(const httplib::Request &req, std::string_view path);

// Parses a non-negative decimal integer query value; nullopt if malformed.
std::optional<size_t> parse_count(const std::string &text);
// Parses a finite non-negative number; nullopt if malformed.
std::optional<double> parse_seconds(const std::string &text);

}  // namespace taskhost::http
