#include <charconv>
#include <cmath>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "model/render.hpp"
#include "jobs/job_manager.hpp"
#include "registry/registry.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/text.hpp"

namespace taskhost::http {

using model::render_artifact;
using model::render_job;

using nlohmann::json;

namespace {

constexpr size_t kMaxJsonDepth = 256;

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
    auto task = s_.registry.snapshot()->find(name);
    if (!task) return problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);

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
            if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>()))
                return problem(res, 400, "timeout_s must be a positive number of seconds", req.path);
            timeout_s = it->get<double>();
        }
    }
    std::optional<double> wait;
    if (!parse_wait(req, res, wait)) return;

    // Nothing is acknowledged before the answer: with ?wait, or for a quick
    // task run right here, the job is stored together with its end (or, if
    // the wait runs out, just before the 202).
    auto submitted = s_.jobs.submit(task, std::move(params), timeout_s, wait);
    using Status = jobs::JobManager::SubmitStatus;
    switch (submitted.status) {
        case Status::invalid_params:
            return problem(res, 400, "Invalid params for task '" + task->name + "': " + submitted.message, req.path);
        case Status::queue_full:
            res.set_header("Retry-After", "1");
            return problem(
                res, 503,
                "The job queue is full (" + std::to_string(s_.jobs.queue_capacity()) + " jobs waiting); retry later",
                req.path);
        case Status::store_error:
            return problem(res, 503, "The job could not be stored: " + submitted.message, req.path);
        case Status::accepted: break;
    }
    std::optional<jobs::JobView> view;
    if (wait) {
        auto deadline = deadline_after(*wait);
        if (submitted.run_here) s_.jobs.run_here(submitted.job);
        view = s_.jobs.wait_terminal(submitted.job, deadline);
    } else if (submitted.run_here) {
        s_.jobs.run_here(submitted.job);  // a quick task, run before the answer
    }
    // A job not stored yet must be durable before the answer: its end is on
    // its way to the store (ran here, or ended within the wait), or the wait
    // ran out and it is stored now.
    if ((wait || submitted.run_here) && !(view && model::is_terminal(view->record.status))) {
        std::string error;
        view = s_.jobs.persist(submitted.job, &error);
        if (!view) return problem(res, 503, "The job could not be stored: " + error, req.path);
    }
    if (wait && view && model::is_terminal(view->record.status)) {
        return finished_job_response(res, render_job(view->record, view->cancel_requested), view->record.artifact_id,
                                     view->artifact_json);
    }
    std::string out;
    out.reserve(160);
    {
        json_text::Object o(out);
        o.str("job_id", submitted.job_id);
        o.str("message", "Task '" + task->name + "' submitted for execution. Job ID: " + submitted.job_id);
    }
    res.set_header("Location", "/api/v1/jobs/" + submitted.job_id);
    json_response(res, 202, std::move(out));
}

void Api::finished_job_response(httplib::Response &res, const std::string &job_json,
                                const std::optional<std::string> &artifact_id, const std::string &artifact_json) {
    // The job record with its result artifact inlined: {...job, "artifact": {...}}.
    std::string body = job_json;
    body.pop_back();
    body += ",\"artifact\":";
    if (!artifact_json.empty()) {
        body += artifact_json;  // rendered by the worker when it finished the job
    } else {
        std::optional<model::Artifact> artifact;
        if (artifact_id) artifact = s_.store.get_artifact(*artifact_id);
        if (artifact) render_artifact(body, *artifact);
        else body += "null";
    }
    body.push_back('}');
    json_response(res, 200, std::move(body));
}

}  // namespace taskhost::http
