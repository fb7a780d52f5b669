// /api/v1/schedules: recurring jobs (jobs/recurring.hpp).
#include "http/api.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "model/render.hpp"
#include "util/json_text.hpp"
#include "util/ulid.hpp"

namespace taskhost::http {

using nlohmann::json;

namespace {

std::string schedule_path(std::string_view id) { return "/api/v1/schedules/" + std::string(id); }

bool valid_schedule_id(httplib::Response &res, std::string_view id) {
    if (is_valid_ulid(id)) return true;
    problem(res, 400, ProblemKind{"invalid-ulid", "Invalid ULID Format"}, "Invalid ULID format: " + std::string(id),
            schedule_path(id));
    return false;
}

// A string member, or null/absent (left unset); false + 400 otherwise.
bool text_member(const json &body, const char *name, std::optional<std::string> &out, const httplib::Request &req,
                 httplib::Response &res) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return true;
    if (!it->is_string()) {
        problem(res, 400, std::string(name) + " must be a string", req.path);
        return false;
    }
    out = it->get<std::string>();
    return true;
}

// ScheduleIn: {task, params, cron, tz, enabled}; unknown members are refused,
// so that a misspelt one is not silently ignored.
bool parse_schedule_input(const httplib::Request &req, httplib::Response &res, jobs::RecurringJobs::Input &in) {
    json body;
    if (!parse_json_body(req, res, body)) return false;
    if (!body.is_object()) {
        problem(res, 400, R"(The body must be a JSON object such as {"task": "...", "cron": "*/5 * * * *"})", req.path);
        return false;
    }
    for (const auto &[key, value] : body.items()) {
        if (key != "task" && key != "params" && key != "cron" && key != "tz" && key != "enabled") {
            problem(res, 400, "unknown member '" + key + "' (a schedule has task, params, cron, tz and enabled)",
                    req.path);
            return false;
        }
    }
    if (!text_member(body, "task", in.task, req, res) || !text_member(body, "cron", in.cron, req, res) ||
        !text_member(body, "tz", in.time_zone, req, res))
        return false;
    if (auto it = body.find("params"); it != body.end() && !it->is_null()) {
        if (!it->is_object()) {
            problem(res, 400, "params must be a JSON object", req.path);
            return false;
        }
        in.params_json = it->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    if (auto it = body.find("enabled"); it != body.end() && !it->is_null()) {
        if (!it->is_boolean()) {
            problem(res, 400, "enabled must be true or false", req.path);
            return false;
        }
        in.enabled = it->get<bool>();
    }
    return true;
}

}  // namespace

void Api::list_schedules(const httplib::Request &req, httplib::Response &res) {
    std::vector<model::Schedule> all;
    try {
        all = s_.jobs.recurring().list();
    } catch (const std::exception &e) {
        return problem(res, Error{ErrorKind::unavailable, e.what()}, req.path);
    }
    std::string out = "[";
    for (const auto &s : all) {
        if (out.size() > 1) out.push_back(',');
        model::render_schedule(out, s);
    }
    out.push_back(']');
    json_response(res, 200, std::move(out));
}

void Api::create_schedule(const httplib::Request &req, httplib::Response &res) {
    jobs::RecurringJobs::Input in;
    if (!parse_schedule_input(req, res, in)) return;
    auto made = s_.jobs.recurring().create(in);
    if (!made) return problem(res, made.error(), req.path);
    res.set_header("Location", absolute_url(req, schedule_path(made->id)));
    json_response(res, 201, model::render_schedule(*made));
}

void Api::get_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id) {
    if (!valid_schedule_id(res, id)) return;
    std::optional<model::Schedule> s;
    try {
        s = s_.jobs.recurring().get(std::string(id));
    } catch (const std::exception &e) {
        return problem(res, Error{ErrorKind::unavailable, e.what()}, req.path);
    }
    if (!s) return problem(res, 404, "Schedule with id " + std::string(id) + " not found", req.path);
    json_response(res, 200, model::render_schedule(*s));
}

void Api::update_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id) {
    if (!valid_schedule_id(res, id)) return;
    jobs::RecurringJobs::Input in;
    if (!parse_schedule_input(req, res, in)) return;
    auto updated = s_.jobs.recurring().update(std::string(id), in);
    if (!updated) return problem(res, updated.error(), req.path);
    json_response(res, 200, model::render_schedule(*updated));
}

void Api::delete_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id) {
    if (!valid_schedule_id(res, id)) return;
    auto removed = s_.jobs.recurring().remove(std::string(id));
    if (!removed) return problem(res, removed.error(), req.path);
    res.status = 204;
}

void Api::trigger_schedule(const httplib::Request &req, httplib::Response &res, std::string_view id) {
    if (!valid_schedule_id(res, id)) return;
    auto job = s_.jobs.recurring().trigger(std::string(id));
    if (!job)
        return problem(res, job.error(), req.path,
                       job.error().kind == ErrorKind::overloaded ? s_.jobs.retry_after_s() : 1);
    std::string out;
    {
        json_text::Object o(out);
        o.str("job_id", *job);
        o.str("schedule_id", std::string(id));
        o.str("message", "Schedule " + std::string(id) + " triggered. Job ID: " + *job);
    }
    res.set_header("Location", "/api/v1/jobs/" + *job);
    json_response(res, 202, std::move(out));
}

}  // namespace taskhost::http
