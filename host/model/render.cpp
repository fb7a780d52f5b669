#include "model/render.hpp"

#include "util/clock.hpp"
#include "util/json_text.hpp"

namespace taskhost::model {

namespace {

void time_field(json_text::Object &o, std::string_view key, int64_t us) {
    if (us == 0) o.null(key);
    else json_text::append_string(o.key(key), iso8601_utc(us));
}

// Empty reads as null.
void opt_text(json_text::Object &o, std::string_view key, const std::string &text) {
    if (text.empty()) o.null(key);
    else o.str(key, text);
}

}  // namespace

void render_job(std::string &out, const Job &job, bool cancel_requested) {
    json_text::Object o(out);
    o.str("id", job.id);
    o.str("task_name", job.task_name);
    o.str("status", to_string(job.status));
    time_field(o, "submitted_at", job.submitted_at);
    time_field(o, "started_at", job.started_at);
    time_field(o, "finished_at", job.finished_at);
    o.opt_str("error", job.error);
    o.opt_str("error_traceback", job.error_traceback);
    o.opt_str("artifact_id", job.artifact_id);
    o.opt_str("result", job.artifact_id);
    if (job.progress < 0) o.null("progress");
    else o.num("progress", job.progress);
    if (job.progress_message.empty()) o.null("progress_message");
    else o.str("progress_message", job.progress_message);
    if (job.timeout_s > 0) o.num("timeout_s", job.timeout_s);
    else o.null("timeout_s");
    o.boolean("cancel_requested", cancel_requested);
    o.integer("priority", job.priority);
    time_field(o, "run_at", job.run_at);
    o.integer("attempt", job.attempts);
    o.integer("max_attempts", job.retry.max_attempts);
    // Waiting for its next attempt: scheduled after one has run.
    time_field(o, "next_attempt_at", job.status == JobStatus::scheduled && job.attempts > 0 ? job.run_at : 0);
    if (job.retry.max_attempts > 1) o.raw("retry", render_retry(job.retry));
    else o.null("retry");
    if (job.attempt_log.empty()) o.raw("attempts", "[]");
    else render_attempt_log(o.key("attempts"), job.attempt_log);
    opt_text(o, "schedule_id", job.schedule_id);
    opt_text(o, "plugin_version", job.plugin_version);
    opt_text(o, "ran_version", job.ran_version);
    opt_text(o, "run_by", job.run_by);
}

std::string render_job(const Job &job, bool cancel_requested) {
    std::string out;
    out.reserve(384);
    render_job(out, job, cancel_requested);
    return out;
}

void render_artifact(std::string &out, const Artifact &a) {
    json_text::Object o(out);
    o.str("id", a.id);
    time_field(o, "created_at", a.created_at);
    time_field(o, "updated_at", a.updated_at);
    o.raw("tags", a.tags_json.empty() ? "[]" : a.tags_json);
    o.raw("data", a.data_json);
    o.opt_str("parent_id", a.parent_id);
    o.integer("level", a.level);
}

std::string render_artifact(const Artifact &a) {
    std::string out;
    out.reserve(256 + a.data_json.size());
    render_artifact(out, a);
    return out;
}

void render_schedule(std::string &out, const Schedule &s) {
    json_text::Object o(out);
    o.str("id", s.id);
    o.str("task_name", s.task_name);
    o.raw("params", s.params_json.empty() ? "{}" : s.params_json);
    o.str("cron", s.cron);
    o.str("tz", s.time_zone);
    o.boolean("enabled", s.enabled);
    o.str("source", s.from_plugin ? "plugin" : "api");
    time_field(o, "created_at", s.created_at);
    time_field(o, "updated_at", s.updated_at);
    time_field(o, "next_run_at", s.next_run_at);
    time_field(o, "last_run_at", s.last_run_at);
    opt_text(o, "last_job_id", s.last_job_id);
    opt_text(o, "last_error", s.last_error);
    o.integer("runs", s.runs);
}

std::string render_schedule(const Schedule &s) {
    std::string out;
    render_schedule(out, s);
    return out;
}

}  // namespace taskhost::model
