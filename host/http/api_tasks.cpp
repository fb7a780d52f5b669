#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "model/render.hpp"
#include "registry/registry.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/sha256.hpp"
#include "util/text.hpp"

namespace taskhost::http {

using model::render_artifact;
using model::render_job;

using nlohmann::json;

namespace {

constexpr size_t kMaxJsonDepth = 256;
constexpr double kMaxTimeoutS = 365.0 * 86400;  // $execute's timeout_s
constexpr int64_t kMaxDelayUs = 365LL * 86400 * 1'000'000;  // run_at, delay_s
constexpr size_t kMaxIdempotencyKey = 255;

std::vector<std::string> split_tags(std::string_view text) {
    std::vector<std::string> tags;
    for (std::string_view tag : split(text, ',')) tags.emplace_back(trim(tag));
    return tags;
}

// A TaskInfo with, in a fleet, the live hosts that have the task.
void append_task(std::string &out, std::string_view info_json, const std::vector<std::string> *hosts) {
    if (!hosts) {
        out += info_json;
        return;
    }
    out += info_json.substr(0, info_json.rfind('}'));
    out += ",\"hosts\":[";
    for (size_t i = 0; i < hosts->size(); ++i) {
        if (i) out.push_back(',');
        json_text::append_string(out, (*hosts)[i]);
    }
    out += "]}";
}

// The hosts that have a task: the others the fleet's rows name, and this
// one only if it has the task loaded now (its own row may lag a reload).
std::vector<std::string> hosts_of(const jobs::FleetTasks::Task *there, const std::string &self, bool here) {
    std::vector<std::string> out;
    if (there)
        for (const auto &host : there->hosts)
            if (host != self) out.push_back(host);
    if (here) out.insert(std::upper_bound(out.begin(), out.end(), self), self);
    return out;
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
    auto seconds = parse_seconds(query_param(req, "wait"));
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
        std::string text = query_param(req, "tags");
        if (!text.empty()) wanted = split_tags(text);
    }
    // A fleet: the tasks runnable somewhere, this host's as it has them now
    // (only those while the others' cannot be read).
    const bool fleet = s_.store.shared();
    std::shared_ptr<const jobs::FleetTasks::Catalogue> catalogue;
    if (fleet) {
        try {
            catalogue = s_.jobs.fleet_tasks();
        } catch (const std::exception &e) {
            spdlog::warn("GET {}: the fleet's tasks could not be read, this host's are listed: {}", req.path, e.what());
        }
    }
    const std::string self = fleet ? s_.store.describing_host() : std::string();
    std::string body = "[";
    auto add = [&](const std::string &info_json, const std::vector<std::string> *hosts) {
        if (body.size() > 1) body.push_back(',');
        append_task(body, info_json, hosts);
    };
    using FleetIt = std::map<std::string, jobs::FleetTasks::Task, std::less<>>::const_iterator;
    FleetIt there = catalogue ? catalogue->tasks.begin() : FleetIt();
    const FleetIt there_end = catalogue ? catalogue->tasks.end() : FleetIt();
    auto list_elsewhere_until = [&](const std::string *name) {  // those before `name` (all: null)
        for (; there != there_end && (!name || there->first < *name); ++there) {
            if (!wanted.empty() && !there->second.has_tags(wanted)) continue;
            const auto hosts = hosts_of(&there->second, self, /*here=*/false);
            if (!hosts.empty()) add(there->second.info_json, &hosts);  // else only this host's row still names it
        }
    };
    for (const auto &[name, task] : snapshot->tasks) {
        list_elsewhere_until(&name);
        const jobs::FleetTasks::Task *also = nullptr;
        if (there != there_end && there->first == name) also = &(there++)->second;
        if (!wanted.empty() && !task->has_tags(wanted)) continue;
        if (!fleet) {
            add(task->info_json, nullptr);
            continue;
        }
        const auto hosts = hosts_of(also, self, /*here=*/true);
        add(task->info_json, &hosts);
    }
    list_elsewhere_until(nullptr);
    body.push_back(']');
    json_response(res, 200, std::move(body));
}

void Api::get_task(const httplib::Request &req, httplib::Response &res, std::string_view name) {
    auto task = s_.registry.snapshot()->find(name);
    if (!s_.store.shared()) {
        if (!task) return problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);
        return json_response(res, 200, task->info_json);
    }
    const jobs::FleetTasks::Task *there = nullptr;
    std::shared_ptr<const jobs::FleetTasks::Catalogue> catalogue;
    try {
        catalogue = s_.jobs.fleet_task(name, there);
    } catch (const std::exception &e) {
        if (!task) return problem(res, 503, std::string("The fleet's tasks could not be read: ") + e.what(), req.path);
    }
    const auto hosts = hosts_of(there, s_.store.describing_host(), task != nullptr);
    if (hosts.empty()) return problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);
    std::string body;
    append_task(body, task ? std::string_view(task->info_json) : std::string_view(there->info_json), &hosts);
    json_response(res, 200, std::move(body));
}

void Api::execute_task(const httplib::Request &req, httplib::Response &res, std::string_view name) {
    const auto snapshot = s_.registry.snapshot();
    auto task = snapshot->find(name);
    auto not_here = [&] {
        if (const std::string *why = snapshot->why_unavailable(name))
            return problem(res, 503, "Task '" + std::string(name) + "' cannot run: " + *why, req.path);
        problem(res, 404, "Task '" + std::string(name) + "' not found in registry", req.path);
    };
    // A fleet: another live host may have it.
    if (!task && !s_.store.shared()) return not_here();

    json body;
    if (!parse_json_body(req, res, body)) return;
    if (!body.is_null() && !body.is_object())
        return problem(res, 400, R"(The body must be a JSON object such as {"params": {...}})", req.path);
    std::string params = "{}";
    jobs::JobOptions options;
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
            options.timeout_s = it->get<double>();
        }
        if (auto it = body.find("priority"); it != body.end() && !it->is_null()) {
            // As JSON Schema's integer: 5.0 is 5. Read as a double, so a huge
            // unsigned one cannot wrap into the range.
            const double level = it->is_number() ? it->get<double>() : NAN;
            if (!(level >= model::kMinPriority && level <= model::kMaxPriority) || level != std::floor(level))
                return problem(res, 400,
                               "priority must be an integer from " + std::to_string(model::kMinPriority) + " to " +
                                   std::to_string(model::kMaxPriority) + " (higher runs first)",
                               req.path);
            options.priority = static_cast<int>(level);
        }
        auto run_at = body.find("run_at");
        auto delay = body.find("delay_s");
        const bool has_run_at = run_at != body.end() && !run_at->is_null();
        const bool has_delay = delay != body.end() && !delay->is_null();
        if (has_run_at && has_delay) return problem(res, 400, "Give run_at or delay_s, not both", req.path);
        const int64_t now = now_us();
        if (has_run_at) {
            std::optional<int64_t> at;
            if (run_at->is_string()) at = parse_rfc3339(run_at->get_ref<const std::string &>());
            if (!at)
                return problem(res, 400,
                               "run_at must be an RFC 3339 date-time with a time zone, such as "
                               "\"2026-12-04T10:00:00Z\"",
                               req.path);
            if (*at - now > kMaxDelayUs) return problem(res, 400, "run_at must be at most a year from now", req.path);
            options.run_at = *at;  // a time past runs now
        }
        if (has_delay) {
            if (!delay->is_number() || !(delay->get<double>() >= 0) ||
                !(delay->get<double>() * 1e6 <= static_cast<double>(kMaxDelayUs)))
                return problem(res, 400, "delay_s must be a number of seconds from 0 to 31536000 (a year)", req.path);
            options.run_at = now + static_cast<int64_t>(delay->get<double>() * 1e6);
        }
        if (auto it = body.find("retry"); it != body.end() && !it->is_null()) {
            model::RetryPolicy checked;
            if (auto why = model::apply_retry_json(*it, checked)) return problem(res, 400, *why, req.path);
            options.retry_json = it->dump();
        }
    }
    if (req.has_header("Idempotency-Key")) {
        std::string key = req.get_header_value("Idempotency-Key");
        if (key.empty() || key.size() > kMaxIdempotencyKey ||
            !std::all_of(key.begin(), key.end(), [](char c) { return c > ' ' && c < 0x7f; }))
            return problem(res, 400,
                           "Idempotency-Key must be 1 to " + std::to_string(kMaxIdempotencyKey) +
                               " visible ASCII characters, without spaces",
                           req.path);
        // The keys of schedules' runs (jobs/recurring.hpp): a client's key
        // there could take a run's place.
        if (key.starts_with("schedule:"))
            return problem(res, 400, "Idempotency-Key must not start with 'schedule:' (the keys of schedules' runs)",
                           req.path);
        // What the request asks, canonically: the same task and body, in any
        // key order and spacing, hash the same. (?wait asks nothing of the job.)
        options.request_hash =
            to_hex(sha256(std::string(name) + '\n' + body.dump(-1, ' ', false, json::error_handler_t::replace)));
        options.idempotency_key = std::move(key);
    }
    std::optional<double> wait;
    if (!parse_wait(req, res, wait)) return;

    std::shared_ptr<WaiterSlot> slot;
    if (wait && !(slot = take_waiter_slot(req, res))) return;
    auto executed =
        task ? s_.jobs.execute(task, std::move(params), options, wait, wait ? client_hangup() : std::stop_token{})
             : s_.jobs.execute_elsewhere(name, std::move(params), options, wait,
                                         wait ? client_hangup() : std::stop_token{});
    if (!executed) {
        const Error &error = executed.error();
        if (error.kind == ErrorKind::not_found) return not_here();
        return problem(res, error, req.path, error.kind == ErrorKind::overloaded ? s_.jobs.retry_after_s() : 1);
    }
    if (executed->replayed) {
        // The key's job, as it is now: its record (with `job_id`, as a 202
        // has), and its artifact once it has ended.
        const jobs::JobView &job = *executed->finished;
        std::string out = render_job(job.record, job.cancel_requested);
        out.pop_back();
        out += ",\"job_id\":";
        json_text::append_string(out, job.record.id);
        if (model::is_terminal(job.record.status)) {
            out += ",\"artifact\":";
            out += job.artifact_json.empty() ? "null" : job.artifact_json;
        }
        out.push_back('}');
        res.set_header("Idempotent-Replayed", "true");
        res.set_header("Location", "/api/v1/jobs/" + job.record.id);  // as the 202 says it
        return json_response(res, 200, std::move(out));
    }
    if (executed->finished) return finished_job_response(res, *executed->finished);
    std::string out;
    out.reserve(160);
    {
        json_text::Object o(out);
        o.str("job_id", executed->job_id);
        o.str("message", "Task '" + std::string(name) + "' submitted for execution. Job ID: " + executed->job_id);
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
