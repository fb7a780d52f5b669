#include <algorithm>
#include <chrono>
#include <memory>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "jobs/job_manager.hpp"
#include "model/render.hpp"
#include "store/store.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/ulid.hpp"

namespace taskhost::http {

using model::render_artifact;
using model::render_job;

namespace {

using Clock = std::chrono::steady_clock;

std::string render_view(const jobs::JobView &view) { return render_job(view.record, view.cancel_requested); }

void job_not_found(const httplib::Request &req, httplib::Response &res) {
    problem(res, 404, "Job not found", req.path);
}

}  // namespace

void list_response(httplib::Response &res, const std::string &path, const std::string &filter,
                   const Api::Paging &paging, std::string items, size_t returned,
                   const std::function<size_t()> &total) {
    if (!paging.paged_object) {
        // A full page may have more behind it: say where the next one starts.
        if (returned >= paging.limit)
            res.set_header("Link", "<" + path + "?" + filter + "limit=" + std::to_string(paging.limit) +
                                       "&offset=" + std::to_string(paging.offset + paging.limit) + ">; rel=\"next\"");
        return json_response(res, 200, std::move(items));
    }
    const size_t count = total();
    std::string body;
    {
        json_text::Object o(body);
        o.raw("items", items);
        o.integer("total", static_cast<int64_t>(count));
        o.integer("page", static_cast<int64_t>(paging.page));
        o.integer("size", static_cast<int64_t>(paging.size));
        o.integer("pages", static_cast<int64_t>((count + paging.size - 1) / paging.size));
    }
    json_response(res, 200, std::move(body));
}

bool Api::parse_paging(const httplib::Request &req, httplib::Response &res, Paging &out) const {
    // Each value is checked against its range before any arithmetic: the
    // store's OFFSET is a signed 64-bit integer, and (page - 1) * size must
    // stay within it, so no value wraps round to the first rows.
    auto count_param = [&](const char *name, size_t lowest, size_t highest, std::optional<size_t> &value) {
        if (!req.has_param(name)) return true;
        value = parse_count(query_param(req, name));
        if (!value || *value < lowest || *value > highest) {
            problem(res, 400,
                    std::string(name) + " must be an integer from " + std::to_string(lowest) + " to " +
                        std::to_string(highest),
                    req.path);
            return false;
        }
        return true;
    };
    const size_t max_page = options_.max_page_size;
    std::optional<size_t> page, size, limit, offset;
    if (!count_param("size", 1, max_page, size) || !count_param("limit", 1, max_page, limit) ||
        !count_param("offset", 0, kMaxOffset, offset) ||
        !count_param("page", 1, size ? std::min(kMaxOffset / *size + 1, kMaxOffset) : kMaxOffset, page))
        return false;
    if (page || size) {
        if (!page || !size) {
            problem(res, 400, "page and size must be given together", req.path);
            return false;
        }
        out.paged_object = true;
        out.page = *page;
        out.size = *size;
        out.limit = *size;
        out.offset = (*page - 1) * *size;
        return true;
    }
    out.limit = limit.value_or(options_.default_page_size);
    out.offset = offset.value_or(0);
    return true;
}

void Api::list_jobs(const httplib::Request &req, httplib::Response &res) {
    std::optional<model::JobStatus> status;
    if (req.has_param("status_filter")) {
        std::string text = query_param(req, "status_filter");
        status = model::parse_job_status(text);
        if (!status)
            return problem(
                res, 400,
                "status_filter must be one of scheduled, pending, running, completed, failed, canceled (got '" + text +
                    "')",
                req.path);
    }
    Paging paging;
    if (!parse_paging(req, res, paging)) return;
    auto jobs = s_.jobs.list(status, paging.limit, paging.offset);
    std::string items = "[";
    for (const auto &job : jobs) {
        if (items.size() > 1) items.push_back(',');
        render_job(items, job.record, job.cancel_requested);
    }
    items.push_back(']');
    list_response(res, "/api/v1/jobs", status ? "status_filter=" + std::string(model::to_string(*status)) + "&" : "",
                  paging, std::move(items), jobs.size(), [&] { return s_.jobs.count(status); });
}

void Api::delete_jobs(const httplib::Request &req, httplib::Response &res) {
    // Only finished jobs: one still to run is deleted by its id, which
    // stops it first.
    std::optional<model::JobStatus> status;
    if (req.has_param("status_filter")) {
        std::string text = query_param(req, "status_filter");
        status = model::parse_job_status(text);
        if (!status || !model::is_terminal(*status))
            return problem(res, 400,
                           "status_filter must be one of completed, failed, canceled: only finished jobs are deleted "
                           "in bulk (got '" +
                               text + "'; DELETE /api/v1/jobs/{id} removes one that has not finished)",
                           req.path);
    }
    // Required: a bare DELETE of the collection is too easy to send by mistake.
    if (!req.has_param("finished_before"))
        return problem(res, 400,
                       "finished_before is required: an RFC 3339 date-time with a time zone, such as "
                       "2026-12-01T00:00:00Z; the finished jobs that finished before it are deleted",
                       req.path);
    const std::string text = query_param(req, "finished_before");
    const std::optional<int64_t> before = parse_rfc3339(text);
    if (!before)
        return problem(res, 400,
                       "finished_before must be an RFC 3339 date-time with a time zone, such as "
                       "2026-12-01T00:00:00Z (a '+' in an offset is written %2B in a query; got '" +
                           text + "')",
                       req.path);
    auto deleted = s_.jobs.retention().delete_finished(*before, status);
    if (!deleted) return problem(res, deleted.error(), req.path);
    std::string body;
    {
        json_text::Object o(body);
        o.integer("deleted", static_cast<int64_t>(deleted->jobs));
        o.integer("artifacts_deleted", static_cast<int64_t>(deleted->artifacts));
    }
    json_response(res, 200, std::move(body));
}

void Api::get_job(const httplib::Request &req, httplib::Response &res, std::string_view id_view) {
    std::string id(id_view);
    if (!is_valid_ulid(id)) return job_not_found(req, res);
    std::optional<double> wait;
    if (!parse_wait(req, res, wait)) return;
    std::shared_ptr<WaiterSlot> slot;
    if (wait && !(slot = take_waiter_slot(req, res))) return;
    auto view = wait ? s_.jobs.wait_terminal(id, deadline_after(*wait), client_hangup()) : s_.jobs.get(id);
    if (!view) return job_not_found(req, res);
    json_response(res, 200, render_view(*view));
}

void Api::delete_job(const httplib::Request &req, httplib::Response &res, std::string_view id_view) {
    std::string id(id_view);
    if (!is_valid_ulid(id)) return job_not_found(req, res);
    if (auto removed = s_.jobs.remove(id); !removed) return problem(res, removed.error(), req.path);
    res.status = 204;
}

void Api::cancel_job(const httplib::Request &req, httplib::Response &res, std::string_view id_view) {
    std::string id(id_view);
    if (!is_valid_ulid(id)) return job_not_found(req, res);
    auto canceled = s_.jobs.cancel(id);
    if (!canceled) return problem(res, canceled.error(), req.path);
    json_response(res, canceled->done ? 200 : 202, render_view(canceled->job));
}

void Api::stream_job(const httplib::Request &req, httplib::Response &res, std::string_view id_view) {
    std::string id(id_view);
    if (!is_valid_ulid(id)) return problem(res, 400, "Invalid job ID format", req.path);
    // Accepted as the original's, and checked the same way; not needed:
    // events are sent when the job changes, not on a poll.
    double poll_interval = 0.5;
    if (!parse_poll_interval(req, res, poll_interval)) return;
    if (!s_.jobs.get(id)) return job_not_found(req, res);
    auto slot = take_waiter_slot(req, res);
    if (!slot) return;
    sse_headers(req, res);
    std::stop_token hangup = client_hangup();
    struct State {
        bool started = false;
        uint64_t version = 0;
    };
    auto state = std::make_shared<State>();
    jobs::JobManager &jobs = s_.jobs;
    // Each call blocks until the job changes (no polling), then sends one
    // event; a comment line every 15 s keeps idle proxies from closing it.
    res.set_chunked_content_provider(
        kEventStream, [this, &jobs, id, state, slot, hangup](size_t, httplib::DataSink &sink) {
            std::optional<jobs::JobView> view;
            if (!state->started) view = jobs.get(id);
            else view = jobs.wait_change(id, state->version, Clock::now() + std::chrono::seconds(15), hangup);
            if (hangup.stop_requested() || !sink.is_writable()) return false;
            if (state->started && streams_stopping()) {  // the host is stopping: end the stream
                sink.done();
                return true;
            }
            if (!view) {
                static constexpr std::string_view deleted = "data: {\"status\": \"deleted\"}\n\n";
                sink.write(deleted.data(), deleted.size());
                sink.done();
                return true;
            }
            bool terminal = model::is_terminal(view->record.status);
            if (!state->started || view->version != state->version || terminal) {
                std::string event = "data: ";
                render_job(event, view->record, view->cancel_requested);
                event += "\n\n";
                if (!sink.write(event.data(), event.size())) return false;
            } else {
                static constexpr std::string_view keep_alive = ": keep-alive\n\n";
                if (!sink.write(keep_alive.data(), keep_alive.size())) return false;
            }
            state->started = true;
            state->version = view->version;
            if (terminal) sink.done();
            return true;
        });
}

void Api::job_schema(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, document_.job_list_schema());
}

}  // namespace taskhost::http
