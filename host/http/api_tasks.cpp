#include <charconv>
#include <cmath>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "model/render.hpp"
#include "registry/registry.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/text.hpp"

namespace taskhost::http {

using model::render_artifact;
using model::render_job;

using nlohmann::json;

namespace {

constexpr size_t kMaxJsonDepth = 256;
constexpr double kMaxTimeoutS = 365.0 * 86400;  // $execute's timeout_s

std::vector<std::string> split_tags(std::string_view text) {
    std::vector<std::string> tags;
    for (std::string_view tag : split(text, ',')) tags.emplace_back(trim(tag));
    return tags;
}

}  // namespace

bool parse_json_body(const httplib::Request &req, httplib::Response &res, json &out) {
    std::string_view body = req.body;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        out = nullptr;
        return true;
    }
    if (json_text::nesting_exceeds(body, kMaxJsonDepth)) {
        problem(res, 400, "The JSON body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels", req.path);
        return false;
    }
    try {
        out = json::parse(body);
    } catch (const json::exception &e) {  // parse_error, and out_of_range for 1e400
        problem(res, 400, std::string("Malformed JSON body: ") + e.what(), req.path);
        return false;
    }
    return true;
}

std::optional<size_t> parse_count(const std::string &text) {
    size_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

std::optional<double> parse_seconds(const std::string &text) {
    double value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty() || !std::isfinite(value) || value < 0)
        return std::nullopt;
    return value;
}

bool Api::parse_wait(const httplib::Request &req, httplib::Response &res, std::optional<double> &out) const {
    if (!req.has_param("wait")) return true;
    auto seconds = parse_seconds(req.get_param_value("wait"));
    if (!seconds) {
        problem(res, 400, "wait must be a non-negative number of seconds", req.path);
        return false;
    }
    out = std::min(*seconds, options_.max_wait_s);
    return true;
}

void Api::list_tasks(const httplib::Request &req, httplib::Response &res) {
    auto snapshot = s_.registry.snapshot();
    std::vector<std::string> wanted;
    if (req.has_param("tags")) {
        std::string text = req.get_param_value("tags");
        if (!text.empty()) wanted = split_tags(text);
    }
    std::string body = "[";
    for (const auto &[name, task] : snapshot->tasks) {
        if (!wanted.empty() && !task->has_tags(wanted)) continue;
        if (body.size() > 1) body.push_back(',');
        body += task->info_json;
    }
    body.push_back(']');
    json_response(res, 200, std::move(body));
}

void Api::get_task(const httplib::Request &req, httplib::Response &res, std::string_view name) {
    auto task = s_.registry.snapshot()->find(name);
    if (!task) return problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);
    json_response(res, 200, task->info_json);
}

void Api::execute_task(const httplib::Request &req, httplib::Response &res, std::string_view name) {
    const auto snapshot = s_.registry.snapshot();
    auto task = snapshot->find(name);
    if (!task) {
        if (const std::string *why = snapshot->why_unavailable(name))
            return problem(res, 503, "Task '" + std::string(name) + "' cannot run: " + *why, req.path);
        return problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);
    }

    json body;
    if (!parse_json_body(req, res, body)) return;
    if (!body.is_null() && !body.is_object())
        return problem(res, 400, R"(The body must be a JSON object such as {"params": {...}})", req.path);
    std::string params = "{}";
    double timeout_s = 0;
    if (body.is_object()) {
        if (auto it = body.find("params"); it != body.end() && !it->is_null()) {
            if (!it->is_object())
                return problem(res, 400, "params must be a JSON object, not " + std::string(it->type_name()), req.path);
            params = it->dump(-1, ' ', false, json::error_handler_t::replace);
        }
        if (auto it = body.find("timeout_s"); it != body.end() && !it->is_null()) {
            // Bounded so that its deadline stays within the clock's range.
            if (!it->is_number() || !(it->get<double>() > 0) || !(it->get<double>() <= kMaxTimeoutS))
                return problem(res, 400,
                               "timeout_s must be a positive number of seconds, at most " +
                                   std::to_string(static_cast<int64_t>(kMaxTimeoutS)) + " (a year)",
                               req.path);
            timeout_s = it->get<double>();
        }
    }
    std::optional<double> wait;
    if (!parse_wait(req, res, wait)) return;

    std::shared_ptr<WaiterSlot> slot;
    if (wait && !(slot = take_waiter_slot(req, res))) return;
    auto executed = s_.jobs.execute(task, std::move(params), timeout_s, wait, wait ? client_hangup() : std::stop_token{});
    if (!executed) {
        const Error &error = executed.error();
        return problem(res, error, req.path, error.kind == ErrorKind::overloaded ? s_.jobs.retry_after_s() : 1);
    }
    if (executed->finished) return finished_job_response(res, *executed->finished);
    std::string out;
    out.reserve(160);
    {
        json_text::Object o(out);
        o.str("job_id", executed->job_id);
        o.str("message", "Task '" + task->name + "' submitted for execution. Job ID: " + executed->job_id);
    }
    res.set_header("Location", "/api/v1/jobs/" + executed->job_id);
    json_response(res, 202, std::move(out));
}

void Api::finished_job_response(httplib::Response &res, const jobs::JobView &job) {
    // The job record with its result artifact inlined: {...job, "artifact": {...}}.
    std::string body = render_job(job.record, job.cancel_requested);
    body.pop_back();
    body += ",\"artifact\":";
    body += job.artifact_json.empty() ? "null" : job.artifact_json;
    body.push_back('}');
    json_response(res, 200, std::move(body));
}

}  // namespace taskhost::http
