#include <sys/utsname.h>
#include <unistd.h>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "plugins/manager.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"

namespace taskhost::http {

void Api::health(const httplib::Request &, httplib::Response &res) {
    std::string why;
    bool ok = s_.store.check(&why);
    std::string body;
    {
        json_text::Object o(body);
        o.str("status", ok ? "healthy" : "unhealthy");
        json_text::Object checks(o.key("checks"));
        json_text::Object db(checks.key("database"));
        db.str("state", ok ? "healthy" : "unhealthy");
        if (!ok) db.str("message", "Database connection failed: " + why);
    }
    // 200 either way, as the original: the body says whether it is healthy.
    json_response(res, 200, std::move(body));
}

void Api::info(const httplib::Request &, httplib::Response &res) {
    std::string body;
    {
        json_text::Object o(body);
        o.str("display_name", "taskhost");
        o.str("version", options_.version);
        o.str("summary", "Compiled plugin tasks served over HTTP as durable jobs");
        o.str("description",
              "Runs tasks from C++ plugins as jobs on a worker pool and keeps each result as an artifact");
        o.null("contact");
        o.null("license_info");
    }
    json_response(res, 200, std::move(body));
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
        o.integer("workers", static_cast<int64_t>(s_.jobs.workers()));
        o.integer("jobs_running", static_cast<int64_t>(s_.jobs.running()));
        o.integer("jobs_queued", static_cast<int64_t>(s_.jobs.queue_depth()));
        o.integer("queue_capacity", static_cast<int64_t>(s_.jobs.queue_capacity()));
        o.str("database", s_.store.url());
        auto w = s_.store.write_stats();
        json_text::Object st(o.key("store_writes"));
        st.integer("commits", static_cast<int64_t>(w.commits));
        st.integer("writes", static_cast<int64_t>(w.writes));
        st.integer("coalesced", static_cast<int64_t>(w.coalesced));
        st.integer("checkpoints", static_cast<int64_t>(w.checkpoints));
        st.integer("writer_checkpoints", static_cast<int64_t>(w.writer_checkpoints));
    }
    json_response(res, 200, std::move(body));
}

void Api::plugins(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, s_.plugins.describe_json());
}

void Api::reload_plugins(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, s_.plugins.reload().to_json());
}

void Api::ping(const httplib::Request &, httplib::Response &res) {
    // The benchmark's ceiling: what the HTTP stack costs with no work behind it.
    json_response(res, 200, R"({"status":"ok","service":"taskhost","message":"pong, no work done"})");
}

void Api::landing(const httplib::Request &, httplib::Response &res) {
    res.status = 200;
    res.set_content(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>taskhost</title></head><body>"
        "<h1>taskhost " + options_.version + "</h1>"
        "<p>Compiled plugin tasks served over HTTP as durable jobs.</p><ul>"
        "<li><a href=\"/api/v1/tasks\">/api/v1/tasks</a></li>"
        "<li><a href=\"/api/v1/jobs\">/api/v1/jobs</a></li>"
        "<li><a href=\"/api/v1/artifacts\">/api/v1/artifacts</a></li>"
        "<li><a href=\"/api/v1/plugins\">/api/v1/plugins</a></li>"
        "<li><a href=\"/health\">/health</a></li></ul></body></html>",
        "text/html; charset=utf-8");
}

}  // namespace taskhost::http
