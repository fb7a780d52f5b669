#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/connection.hpp"
#include "http/console.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "metrics/metrics.hpp"
#include "plugins/manager.hpp"
#include "registry/registry.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"

namespace taskhost::http {

namespace {

using Clock = std::chrono::steady_clock;
using ReloadProgress = plugins::PluginManager::ReloadProgress;

double running_s(const ReloadProgress::Running &r) {
    return std::chrono::duration<double>(Clock::now() - r.started).count();
}

// "has been running for 42 s"
std::string running_for(const ReloadProgress::Running &r) {
    return "has been running for " + std::to_string(static_cast<int64_t>(running_s(r))) + " s";
}

// " (loading bad.so)", or nothing between two files
std::string loading(const ReloadProgress::Running &r) {
    return r.loading.empty() ? std::string() : " (loading " + r.loading + ")";
}

// "42 s", or "0.5 s" below 10 s when not whole.
std::string seconds_text(double s) {
    if (s >= 10 || s == static_cast<double>(static_cast<int64_t>(s)))
        return std::to_string(static_cast<int64_t>(s)) + " s";
    char text[32];
    std::snprintf(text, sizeof text, "%.1f s", s);
    return text;
}

}  // namespace

std::string Api::health_json() const {
    const Result<void> check = s_.store.check();
    const bool ok = check.ok();
    // Degraded: the host serves, but something needs a person. Shown only
    // when it is so, so a healthy host answers as the original does.
    const size_t stuck = s_.jobs.load().stuck;
    const std::vector<std::string> plugin_problems = s_.plugins.problems();
    const ReloadProgress reload = s_.plugins.reload_progress();
    const double limit_s = options_.reload_timeout_s;
    const bool reload_overdue = reload.running && running_s(*reload.running) >= limit_s;
    const bool reload_overran = reload.last && reload.last->seconds > limit_s;  // the last one, since finished
    const bool degraded = stuck > 0 || !plugin_problems.empty() || reload_overdue;
    std::string body;
    {
        json_text::Object o(body);
        o.str("status", !ok ? "unhealthy" : degraded ? "degraded" : "healthy");
        json_text::Object checks(o.key("checks"));
        {
            json_text::Object db(checks.key("database"));
            db.str("state", ok ? "healthy" : "unhealthy");
            if (!ok) db.str("message", "Database connection failed: " + check.error().message);
        }
        if (stuck > 0) {
            json_text::Object workers(checks.key("workers"));
            workers.str("state", "degraded");
            workers.str("message", std::to_string(stuck) +
                                       " worker(s) stuck in task code that did not stop within its limit: given up "
                                       "on and replaced; the code may still be running");
        }
        if (!plugin_problems.empty()) {
            std::string message;
            for (const auto &p : plugin_problems) message += (message.empty() ? "" : "; ") + p;
            json_text::Object plugins(checks.key("plugins"));
            plugins.str("state", "degraded");
            plugins.str("message", message);
        }
        if (reload_overdue) {
            json_text::Object r(checks.key("reload"));
            r.str("state", "degraded");
            r.str("message", "a reload " + running_for(*reload.running) + loading(*reload.running) + ", longer than " +
                                 seconds_text(limit_s) + " (--reload-timeout-s)");
        } else if (reload_overran) {
            // Over now, and the host is fine: said, as the reason a $reload may have answered 503.
            const ReloadProgress::Finished &last = *reload.last;
            json_text::Object r(checks.key("reload"));
            r.str("state", "healthy");
            r.str("message", "the last reload took " + seconds_text(last.seconds) + ", longer than " +
                                 seconds_text(limit_s) + " (--reload-timeout-s)" +
                                 (last.slowest_file.empty() ? std::string()
                                                            : "; the slowest file was " + last.slowest_file + " (" +
                                                                  seconds_text(last.slowest_s) + ")") +
                                 "; it finished at " + iso8601_utc(last.finished_at_us));
        }
    }
    return body;
}

void Api::health(const httplib::Request &, httplib::Response &res) {
    // 200 either way, as the original: the body says whether it is healthy.
    json_response(res, 200, health_json());
}

namespace {
// At most 20 events a second per stream, whatever the client asks for.
constexpr double kMinHealthInterval = 0.05;
}  // namespace

bool Api::parse_poll_interval(const httplib::Request &req, httplib::Response &res, double &out) const {
    if (!req.has_param("poll_interval")) return true;
    auto seconds = parse_seconds(query_param(req, "poll_interval"));
    if (!seconds || *seconds <= 0 || *seconds > kMaxPollInterval) {
        problem(res, 400,
                "poll_interval must be a positive number of seconds, at most " +
                    std::to_string(static_cast<int64_t>(kMaxPollInterval)),
                req.path);
        return false;
    }
    out = *seconds;
    return true;
}

void Api::health_stream(const httplib::Request &req, httplib::Response &res) {
    double interval = 1.0;
    if (!parse_poll_interval(req, res, interval)) return;
    interval = std::max(interval, kMinHealthInterval);
    auto slot = take_waiter_slot(req, res);
    if (!slot) return;
    sse_headers(req, res);
    const auto period = seconds_duration(interval);
    auto next = std::make_shared<std::optional<Clock::time_point>>();  // empty: the first event is due now
    std::stop_token hangup = client_hangup();
    // One event now, then one per interval, until the client goes away or
    // the host stops (as the original, it never ends by itself).
    res.set_chunked_content_provider(kEventStream,
                                     [this, period, next, slot, hangup](size_t, httplib::DataSink &sink) {
                                         if (*next && !wait_for_next_event(**next, hangup)) {
                                             sink.done();
                                             return true;
                                         }
                                         std::string event = "data: " + health_json() + "\n\n";
                                         if (!sink.write(event.data(), event.size())) return false;
                                         // Steady cadence; a stream that fell behind (slow client) does
                                         // not send a burst to catch up.
                                         const auto now = Clock::now();
                                         *next = (*next && **next + period > now) ? **next + period : now + period;
                                         return true;
                                     });
}

bool Api::wait_for_next_event(Clock::time_point until, std::stop_token abandon) {
    std::stop_callback wake(abandon, [this] {
        std::lock_guard lock(streams_mu_);
        streams_cv_.notify_all();
    });
    std::unique_lock lock(streams_mu_);
    return !streams_cv_.wait_until(lock, until, [&] { return streams_stopping_ || abandon.stop_requested(); });
}

struct Api::WaiterSlot {
    explicit WaiterSlot(std::atomic<size_t> &count) : count(count) {}
    ~WaiterSlot() { count.fetch_sub(1, std::memory_order_relaxed); }
    std::atomic<size_t> &count;
};

std::shared_ptr<Api::WaiterSlot> Api::take_waiter_slot(const httplib::Request &req, httplib::Response &res) {
    if (waiters_.fetch_add(1, std::memory_order_relaxed) >= options_.max_waiters) {
        waiters_.fetch_sub(1, std::memory_order_relaxed);
        res.set_header("Retry-After", "1");
        problem(res, 503,
                "The server has " + std::to_string(options_.max_waiters) +
                    " requests waiting on jobs or streaming, its limit (--max-waiters); retry later or poll without ?wait",
                req.path);
        return nullptr;
    }
    return std::make_shared<WaiterSlot>(waiters_);
}

std::stop_token client_hangup() {
    const Connection *c = current_connection();
    return c ? c->hangup_token() : std::stop_token{};
}

void Api::stop_streams() {
    {
        std::lock_guard lock(streams_mu_);
        streams_stopping_ = true;
    }
    streams_cv_.notify_all();
    s_.jobs.release_waiters();                      // job streams and ?wait long-polls
    if (s_.reloads) s_.reloads->release_waiters();  // $reload
}

bool Api::streams_stopping() {
    std::lock_guard lock(streams_mu_);
    return streams_stopping_;
}

Api::Api(const ServerOptions &options, Services services)
    : options_(options),
      s_(services),
      identity_{"taskhost", options.version, "Compiled plugin tasks served over HTTP as durable jobs",
                "Runs tasks from C++ plugins as jobs on a worker pool and keeps each result as an artifact"},
      document_(identity_, options.auth) {}

void Api::info(const httplib::Request &, httplib::Response &res) {
    std::string body;
    {
        json_text::Object o(body);
        o.str("display_name", identity_.display_name);
        o.str("version", identity_.version);
        o.str("summary", identity_.summary);
        o.str("description", identity_.description);
        o.null("contact");
        o.null("license_info");
    }
    json_response(res, 200, std::move(body));
}

void Api::openapi(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, document_.openapi_json());
}

void Api::system(const httplib::Request &, httplib::Response &res) {
    utsname uts{};
    ::uname(&uts);
    std::string body;
    {
        json_text::Object o(body);
        o.str("current_time", iso8601_utc(now_us()));
        o.str("timezone", "UTC");
        o.str("platform", std::string(uts.sysname) + "-" + uts.release + "-" + uts.machine);
        o.str("hostname", uts.nodename);
        o.str("version", options_.version);
        o.integer("pid", ::getpid());
        const auto load = s_.jobs.load();
        o.integer("workers", static_cast<int64_t>(load.workers));
        o.integer("jobs_running", static_cast<int64_t>(load.running));
        o.integer("jobs_queued", static_cast<int64_t>(load.queued));
        o.integer("jobs_scheduled", static_cast<int64_t>(load.scheduled));
        o.integer("waiting_requests", static_cast<int64_t>(load.waiting));
        o.integer("queue_capacity", static_cast<int64_t>(load.queue_capacity));
        o.str("database", s_.store.url());
        o.str("sync", s_.store.sync());
        auto w = s_.store.write_stats();
        {
            json_text::Object st(o.key("store_writes"));
            st.integer("commits", static_cast<int64_t>(w.commits));
            st.integer("writes", static_cast<int64_t>(w.writes));
            st.integer("checkpoints", static_cast<int64_t>(w.checkpoints));
            st.integer("writer_checkpoints", static_cast<int64_t>(w.writer_checkpoints));
        }
        {
            const auto &retention = s_.jobs.retention();
            const auto stats = retention.stats();
            json_text::Object r(o.key("retention"));
            if (retention.options().finished_s > 0) r.num("finished_s", retention.options().finished_s);
            else r.null("finished_s");
            if (retention.options().max_jobs > 0)
                r.integer("max_jobs", static_cast<int64_t>(retention.options().max_jobs));
            else r.null("max_jobs");
            r.num("interval_s", retention.interval_s());
            r.integer("passes", static_cast<int64_t>(stats.passes));
            r.integer("jobs_deleted", static_cast<int64_t>(stats.jobs));
            r.integer("artifacts_deleted", static_cast<int64_t>(stats.artifacts));
            if (stats.last_error.empty()) r.null("last_error");
            else r.str("last_error", stats.last_error);
        }
        {
            const auto stats = s_.jobs.recurring().stats();
            json_text::Object r(o.key("schedules"));
            r.integer("runs_made", static_cast<int64_t>(stats.fired));
            r.integer("runs_failed", static_cast<int64_t>(stats.failed));
            r.integer("runs_caught_up", static_cast<int64_t>(stats.caught_up));
        }
        // pid, plugin, generation, state, job_id, jobs_served, rss_bytes
        // of each (--isolation process; empty in process).
        o.raw("worker_processes", s_.jobs.workers_json());
    }
    json_response(res, 200, std::move(body));
}

void Api::system_hosts(const httplib::Request &req, httplib::Response &res) {
    std::vector<store::Store::HostRecord> hosts;
    try {
        hosts = s_.store.hosts();
    } catch (const std::exception &e) {
        return problem(res, 503, std::string("The hosts could not be read: ") + e.what(), req.path);
    }
    const auto self = s_.store.describing_host();
    std::string body = "[";
    for (const auto &h : hosts) {
        if (body.size() > 1) body += ',';
        json_text::Object o(body);
        o.str("id", h.id);
        o.str("address", h.address);
        o.str("version", h.version);
        o.raw("plugins", h.plugins_json);
        o.str("started_at", iso8601_utc(h.started_at));
        o.str("heartbeat_at", iso8601_utc(h.heartbeat_at));
        o.boolean("self", h.id == self);
    }
    body += ']';
    json_response(res, 200, std::move(body));
}

void Api::system_apps(const httplib::Request &, httplib::Response &res, bool schema) {
    if (schema) return json_response(res, 200, document_.app_list_schema());
    std::string body = "[";
    {
        json_text::Object o(body);
        o.str("name", "taskhost console");
        o.str("version", options_.version);
        o.str("prefix", "/");
        o.str("description", "Built-in web console: tasks, jobs, artifacts, plugins, health and the API reference");
        o.str("author", "taskhost");
        o.str("entry", "index.html");
        o.boolean("is_package", true);
    }
    body += "]";
    json_response(res, 200, std::move(body));
}

void Api::plugins(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, s_.plugins.describe_json());
}

// On the host's reload thread, so that a reload stuck in plugin code holds
// no HTTP thread for longer than --reload-timeout-s, and requests coalesce
// with SIGHUP and --watch ones.
void Api::reload_plugins(const httplib::Request &req, httplib::Response &res) {
    if (!s_.reloads) return json_response(res, 200, s_.plugins.reload().to_json());
    const auto deadline = Clock::now() + seconds_duration(options_.reload_timeout_s);
    if (std::optional<std::string> report = s_.reloads->request_and_wait(deadline))
        return json_response(res, 200, std::move(*report));
    const ReloadProgress progress = s_.plugins.reload_progress();
    const std::string detail = progress.running
                                   ? "the reload " + running_for(*progress.running) + " and has not finished" +
                                         loading(*progress.running) + "; it goes on in the background"
                                   : "the reload did not finish within " + seconds_text(options_.reload_timeout_s) +
                                         "; it goes on in the background";
    spdlog::warn("$reload answered 503: {}", detail);
    problem(res, 503, detail, req.path);
}

void Api::metrics(const httplib::Request &, httplib::Response &res) {
    using metrics::family;
    using metrics::sample;
    std::string out;
    out.reserve(16384);
    using metrics::single;
    auto n = [](auto v) { return static_cast<double>(v); };
    family(out, "taskhost_info", "gauge", "Always 1; the version is a label.");
    sample(out, "taskhost_info", "version=\"" + identity_.version + "\"", 1);
    const auto load = s_.jobs.load();
    single(out, "taskhost_jobs_running", "gauge", "Jobs running now.", n(load.running));
    single(out, "taskhost_jobs_queued", "gauge", "Jobs waiting for a worker.", n(load.queued));
    single(out, "taskhost_job_queue_capacity", "gauge", "Most jobs that may wait for a worker (--queue-size).",
           n(load.queue_capacity));
    single(out, "taskhost_jobs_scheduled", "gauge",
           "Jobs this host holds until their run_at (at most --queue-size of them).", n(load.scheduled));
    single(out, "taskhost_workers", "gauge", "Worker threads (--max-concurrency).", n(load.workers));
    const auto retained = s_.jobs.retention().stats();
    single(out, "taskhost_retention_jobs_deleted_total", "counter",
           "Finished jobs deleted by retention (--retain-finished, --retain-max-jobs) and DELETE /api/v1/jobs.",
           n(retained.jobs));
    single(out, "taskhost_retention_artifacts_deleted_total", "counter", "Result artifacts deleted with those jobs.",
           n(retained.artifacts));
    single(out, "taskhost_retention_passes_total", "counter", "Background retention passes done.", n(retained.passes));
    const auto recurring = s_.jobs.recurring().stats();
    single(out, "taskhost_schedule_runs_total", "counter", "Jobs this host made for recurring schedules.",
           n(recurring.fired));
    single(out, "taskhost_schedule_run_failures_total", "counter",
           "Schedule runs that made no job (the schedule's last_error says why).", n(recurring.failed));
    single(out, "taskhost_schedule_catch_ups_total", "counter",
           "Schedule runs fired late, once for all the runs missed while no host fired them.", n(recurring.caught_up));
    single(out, "taskhost_workers_stuck", "gauge",
           "Workers given up on in task code that did not stop within its limit (replaced; the code may still run).",
           n(load.stuck));
    single(out, "taskhost_waiting_requests", "gauge", "Requests waiting on a job now (long-polls, job streams).",
           n(load.waiting));
    s_.metrics.render(out);

    const auto workers = s_.jobs.worker_stats();
    single(out, "taskhost_worker_processes", "gauge", "Worker processes alive (--isolation process).",
           n(workers.alive));
    single(out, "taskhost_worker_processes_busy", "gauge", "Worker processes running a job.", n(workers.busy));
    single(out, "taskhost_worker_starts_total", "counter", "Worker processes started.", n(workers.started));
    single(out, "taskhost_worker_recycles_total", "counter", "Worker processes replaced after --worker-max-jobs.",
           n(workers.recycled));
    family(out, "taskhost_worker_crashes_total", "counter",
           "Worker processes that died (signal or exit) in a task or a params check, by plugin.");
    for (const auto &[plugin, count] : workers.crashed_by_plugin)
        sample(out, "taskhost_worker_crashes_total", "plugin=\"" + metrics::label_value(plugin) + "\"", n(count));
    family(out, "taskhost_worker_kills_total", "counter",
           "Worker processes killed, by reason: given_up (past its timeout or cancel and the grace), cpu_limit "
           "(--worker-cpu-seconds), start_timeout.");
    for (const auto &[reason, count] : workers.killed_by_reason)
        sample(out, "taskhost_worker_kills_total", "reason=\"" + reason + "\"", n(count));

    const auto w = s_.store.write_stats();
    single(out, "taskhost_store_commits_total", "counter", "Transactions the store's writer committed.", n(w.commits));
    single(out, "taskhost_store_writes_total", "counter", "Writes the store's writer applied (several per commit).",
           n(w.writes));
    family(out, "taskhost_store_checkpoints_total", "counter", "WAL checkpoints, by who ran them.");
    sample(out, "taskhost_store_checkpoints_total", "by=\"background\"", n(w.checkpoints));
    sample(out, "taskhost_store_checkpoints_total", "by=\"writer\"", n(w.writer_checkpoints));

    const auto p = s_.plugins.counts();
    single(out, "taskhost_plugins_loaded", "gauge", "Plugin files loaded.", n(p.active));
    single(out, "taskhost_plugins_refused", "gauge", "Plugin files whose last content was refused.", n(p.refused));
    single(out, "taskhost_plugins_quarantined", "gauge",
           "Plugin files whose content is quarantined (it crashed or hung the host, or failed its probe).",
           n(p.quarantined));
    single(out, "taskhost_plugin_reloads_total", "counter",
           "Scans of the plugins folder (start, SIGHUP, $reload, --watch).", n(p.reloads));
    const ReloadProgress reload = s_.plugins.reload_progress();
    single(out, "taskhost_reload_in_progress_seconds", "gauge",
           "How long the reload in progress has been running; 0 when none runs.",
           reload.running ? running_s(*reload.running) : 0.0);
    single(out, "taskhost_tasks", "gauge", "Tasks registered.", n(s_.registry.snapshot()->tasks.size()));

    metrics::render_process(out);
    res.status = 200;
    res.set_content(std::move(out), "text/plain; version=0.0.4; charset=utf-8");
}

void Api::ping(const httplib::Request &, httplib::Response &res) {
    // The benchmark's ceiling: what the HTTP stack costs with no work behind it.
    json_response(res, 200, R"({"status":"ok","service":"taskhost","message":"pong, no work done"})");
}

void Api::console_settings(const httplib::Request &req, httplib::Response &res) {
    std::string body;
    {
        json_text::Object o(body);
        o.str("version", options_.version);
        o.str("display_name", identity_.display_name);
        if (options_.auth.enabled()) o.str("api_key_header", options_.auth.header);
        else o.null("api_key_header");
    }
    serve_console_text(req, res, body, "application/json");
}

}  // namespace taskhost::http
