#include "jobs/recurring.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "jobs/job_manager.hpp"
#include "model/cron.hpp"
#include "util/clock.hpp"
#include "util/sha256.hpp"
#include "util/thread_name.hpp"
#include "util/ulid.hpp"

namespace taskhost::jobs {

namespace {

// A run that could not be made for now (the queue full, the store away)
// is tried again this much later.
constexpr int64_t kRetryUs = 1'000'000;
// Another host, or an edit, moved the schedule first: read it again soon.
constexpr int64_t kRereadUs = 50'000;

Error schedule_not_found(const std::string &id) {
    return Error{ErrorKind::not_found, "Schedule with id " + id + " not found"};
}

// A job of the schedule's task and params: made here, or (a fleet) handed
// to a host that has the task.
Result<JobManager::Executed> make_job(registry::Registry &registry, store::Store &store, JobManager &jobs,
                                      const model::Schedule &s, const JobOptions &options) {
    auto snapshot = registry.snapshot();
    if (auto task = snapshot->find(s.task_name)) return jobs.execute(task, s.params_json, options, std::nullopt);
    // Not runnable here (absent, or its plugin quarantined): in a fleet,
    // handed to a host that has it, as a submit would be.
    const std::string *why = snapshot->why_unavailable(s.task_name);
    const std::string cannot_run = why ? "Task '" + s.task_name + "' cannot run: " + *why : std::string();
    if (why && !store.shared()) return fail(ErrorKind::conflict, cannot_run);
    auto elsewhere = jobs.execute_elsewhere(s.task_name, s.params_json, options, std::nullopt);
    if (!elsewhere && why && elsewhere.error().kind == ErrorKind::not_found)
        return fail(ErrorKind::conflict, cannot_run);
    return elsewhere;
}

}  // namespace

RecurringJobs::RecurringJobs(store::Store &store, registry::Registry &registry, JobManager &jobs, Options options)
    : store_(store), registry_(registry), jobs_(jobs), options_(options) {}

void RecurringJobs::start() {
    if (thread_.joinable()) return;
    thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

void RecurringJobs::stop() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    wake_cv_.notify_all();
    thread_.join();
}

void RecurringJobs::wake() {
    {
        std::lock_guard lock(wake_mu_);
        woken_ = true;
    }
    wake_cv_.notify_all();
}

RecurringJobs::Stats RecurringJobs::stats() const {
    return {fired_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed),
            caught_up_.load(std::memory_order_relaxed)};
}

// ---- firing ---------------------------------------------------------------

void RecurringJobs::loop(std::stop_token stop) {
    name_this_thread("schedules");
    const auto poll_us = static_cast<int64_t>(std::max(0.01, options_.poll_s) * 1e6);
    while (!stop.stop_requested()) {
        const int64_t now = now_us();
        int64_t next = now + poll_us;
        try {
            next = std::min(next, fire_due(now));
        } catch (const std::exception &e) {
            spdlog::warn("schedules: could not read them: {}", e.what());
        }
        std::unique_lock lock(wake_mu_);
        const auto delay = std::chrono::microseconds(std::max<int64_t>(0, next - now_us()));
        wake_cv_.wait_for(lock, stop, delay, [&] { return woken_; });
        woken_ = false;
    }
}

int64_t RecurringJobs::fire_due(int64_t now) {
    int64_t next = INT64_MAX;
    for (const model::Schedule &s : store_.list_schedules()) {
        if (!s.enabled || s.next_run_at == 0) continue;
        next = std::min(next, s.next_run_at > now ? s.next_run_at : (fire(s, now) ? now + kRereadUs : now + kRetryUs));
    }
    return next;
}

bool RecurringJobs::fire(const model::Schedule &s, int64_t now) {
    const int64_t slot = s.next_run_at;
    model::ScheduleRun run{now, {}, {}, false};
    int64_t next = 0;
    // A stored schedule was valid when it was saved; a time zone can leave
    // the system's tzdata since.
    auto cron = model::CronSchedule::parse(s.cron, s.time_zone);
    if (!cron) {
        run.error = cron.error().message;
    } else {
        next = cron->next_after(now).value_or(0);
        // The run's key: every host that fires this run, now or after a
        // restart, finds one job. It never expires (a run is made once).
        JobOptions options;
        options.idempotency_key = "schedule:" + s.id + ":" + std::to_string(slot);
        options.request_hash = to_hex(sha256(options.idempotency_key));
        options.key_expires = false;
        options.schedule_id = s.id;
        auto made = make_job(registry_, store_, jobs_, s, options);
        if (!made && (made.error().kind == ErrorKind::overloaded || made.error().kind == ErrorKind::unavailable)) {
            spdlog::warn("schedule {} ({}): its run is put off: {}", s.id, s.task_name, made.error().message);
            return false;
        }
        if (made) {
            run.job_id = made->job_id;
            run.made = !made->replayed;
        } else {
            run.error = made.error().message;
            // A fleet: another host may have made it although this one
            // could not (the task is quarantined here, say).
            try {
                if (store_.shared())
                    if (auto found = store_.find_keyed_job(options.idempotency_key, 0)) {
                        run.job_id = found->id;
                        run.error.clear();
                    }
            } catch (const std::exception &) {  // the error recorded stands
            }
        }
        if (run.made) {
            fired_.fetch_add(1, std::memory_order_relaxed);
            if (auto after = cron->next_after(slot); after && *after <= now) {
                caught_up_.fetch_add(1, std::memory_order_relaxed);
                spdlog::info("schedule {} ({}): runs from {} to {} were missed; one run now for them all", s.id,
                             s.task_name, iso8601_utc(slot), iso8601_utc(now));
            }
        }
    }
    if (run.job_id.empty()) {
        failed_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("schedule {} ({}): no job was made: {}", s.id, s.task_name, run.error);
    }
    try {
        // An edit, a pause or another host moved the schedule first. A job
        // made here all the same stands, and is counted.
        if (!store_.record_schedule_run(s.id, run, slot, next) && run.made)
            store_.record_schedule_run(s.id, run, std::nullopt, 0);
    } catch (const std::exception &e) {
        // The job is made: firing this run again finds it by its key.
        spdlog::warn("schedule {}: its run could not be recorded: {}", s.id, e.what());
        return false;
    }
    return true;
}

// ---- the API --------------------------------------------------------------

Result<int64_t> RecurringJobs::next_run(const model::Schedule &s, int64_t now) {
    auto cron = model::CronSchedule::parse(s.cron, s.time_zone);
    if (!cron) return cron.error();
    if (!s.enabled) return int64_t{0};
    return cron->next_after(now).value_or(0);
}

Result<model::Schedule> RecurringJobs::create(const Input &in) {
    if (!in.task || in.task->empty()) return fail(ErrorKind::invalid, "task is required");
    if (!in.cron) return fail(ErrorKind::invalid, "cron is required");
    model::Schedule s;
    s.id = new_ulid_string();
    s.task_name = *in.task;
    s.params_json = in.params_json.value_or("{}");
    s.cron = *in.cron;
    if (in.time_zone && !in.time_zone->empty()) s.time_zone = *in.time_zone;
    s.enabled = in.enabled.value_or(true);
    const int64_t now = now_us();
    auto next = next_run(s, now);
    if (!next) return next.error();
    if (auto valid = jobs_.check_task_params(s.task_name, s.params_json); !valid) return valid.error();
    s.next_run_at = *next;
    s.created_at = s.updated_at = now;
    try {
        if (!store_.insert_schedule(s)) return fail(ErrorKind::conflict, "a schedule with id " + s.id + " exists");
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("The schedule could not be stored: ") + e.what());
    }
    spdlog::info("schedule {} created: {} at '{}' ({}), next run {}", s.id, s.task_name, s.cron, s.time_zone,
                 s.next_run_at ? iso8601_utc(s.next_run_at) : "none");
    wake();
    return s;
}

Result<model::Schedule> RecurringJobs::update(const std::string &id, const Input &in) {
    std::optional<model::Schedule> found;
    try {
        found = store_.get_schedule(id);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, e.what());
    }
    if (!found) return schedule_not_found(id);
    model::Schedule s = std::move(*found);
    const bool was_enabled = s.enabled;
    const std::string old_cron = s.cron, old_tz = s.time_zone, old_task = s.task_name, old_params = s.params_json;
    if (s.from_plugin && ((in.task && *in.task != s.task_name) || (in.cron && *in.cron != s.cron) ||
                          (in.time_zone && *in.time_zone != s.time_zone)))
        return fail(ErrorKind::conflict, "Schedule " + id + " is declared by the plugin of task '" + s.task_name +
                                             "': its task, cron and tz change there; here only enabled and params");
    if (in.task) {
        if (in.task->empty()) return fail(ErrorKind::invalid, "task must not be empty");
        s.task_name = *in.task;
    }
    if (in.params_json) s.params_json = *in.params_json;
    if (in.cron) s.cron = *in.cron;
    if (in.time_zone) s.time_zone = in.time_zone->empty() ? "UTC" : *in.time_zone;
    if (in.enabled) s.enabled = *in.enabled;
    const int64_t now = now_us();
    const bool new_rule = s.cron != old_cron || s.time_zone != old_tz;
    // Read only when it matters: a schedule whose stored rule no longer
    // reads (a zone gone from tzdata) can still be paused.
    int64_t next = 0;
    if (new_rule || s.enabled) {
        auto read = next_run(s, now);
        if (!read) return read.error();
        next = *read;
    }
    if (s.task_name != old_task || s.params_json != old_params)
        if (auto valid = jobs_.check_task_params(s.task_name, s.params_json); !valid) return valid.error();
    // A new rule, or a resumed schedule, starts from now: no run for the
    // time it was paused. Otherwise its next run is left as the store has
    // it (the schedules thread may have moved it on since it was read).
    const bool reset = !s.enabled ? was_enabled : (!was_enabled || new_rule || s.next_run_at == 0);
    if (reset) s.next_run_at = s.enabled ? next : 0;
    s.updated_at = now;
    try {
        if (!store_.update_schedule(s, reset)) return schedule_not_found(id);
        if (!reset)
            if (auto stored = store_.get_schedule(id)) s = std::move(*stored);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("The schedule could not be stored: ") + e.what());
    }
    wake();
    return s;
}

Result<void> RecurringJobs::remove(const std::string &id) {
    try {
        auto s = store_.get_schedule(id);
        if (!s) return schedule_not_found(id);
        // A plugin's comes back at its next load, unless no host has its task.
        if (s->from_plugin) {
            auto where = jobs_.check_task_params(s->task_name, s->params_json);
            if (where || where.error().kind != ErrorKind::not_found)
                return fail(ErrorKind::conflict, "Schedule " + id + " is declared by the plugin of task '" +
                                                     s->task_name +
                                                     "' and would come back at its next load: disable it instead "
                                                     "(PUT {\"enabled\": false})");
        }
        if (!store_.delete_schedule(id)) return schedule_not_found(id);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, e.what());
    }
    return {};
}

Result<std::string> RecurringJobs::trigger(const std::string &id) {
    std::optional<model::Schedule> s;
    try {
        s = store_.get_schedule(id);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, e.what());
    }
    if (!s) return schedule_not_found(id);
    JobOptions options;
    options.schedule_id = s->id;
    auto made = make_job(registry_, store_, jobs_, *s, options);
    if (!made) return made.error();
    try {
        store_.record_schedule_run(s->id, {now_us(), made->job_id, {}, true}, std::nullopt, 0);
    } catch (const std::exception &e) {
        spdlog::warn("schedule {}: its triggered run {} could not be recorded: {}", s->id, made->job_id, e.what());
    }
    return made->job_id;
}

std::optional<model::Schedule> RecurringJobs::get(const std::string &id) const { return store_.get_schedule(id); }

std::vector<model::Schedule> RecurringJobs::list() const { return store_.list_schedules(); }

// ---- schedules plugins declare ----------------------------------------------

void RecurringJobs::sync_declared(const registry::Snapshot &snapshot) {
    std::vector<model::Schedule> all;
    try {
        all = store_.list_schedules();
    } catch (const std::exception &e) {
        spdlog::warn("schedules: the ones plugins declare were not brought up to date: {}", e.what());
        return;
    }
    const int64_t now = now_us();
    // Not a structured binding: clang 14 cannot capture one in the lambda.
    for (const auto &entry : snapshot.tasks) {
        const std::string &name = entry.first;
        const th_task_desc *d = entry.second->desc;
        auto have = std::find_if(all.begin(), all.end(),
                                 [&](const model::Schedule &s) { return s.from_plugin && s.task_name == name; });
        try {
            if (d->every_cron == nullptr) {
                if (have != all.end() && store_.delete_schedule(have->id))
                    spdlog::info("schedule {} deleted: task '{}' no longer declares one", have->id, name);
                continue;
            }
            model::Schedule s = have != all.end() ? *have : model::Schedule{};
            const std::string tz = d->every_tz && *d->every_tz ? d->every_tz : "UTC";
            if (have != all.end() && s.cron == d->every_cron && s.time_zone == tz) continue;
            s.task_name = name;
            s.cron = d->every_cron;
            s.time_zone = tz;
            s.from_plugin = true;
            s.updated_at = now;
            auto next = next_run(s, now);  // the plugin's declaration was checked at load
            s.next_run_at = next ? *next : 0;
            if (have == all.end()) {
                s.id = new_ulid_string();
                s.created_at = now;
                // False: another host of the fleet made it first.
                if (store_.insert_schedule(s))
                    spdlog::info("schedule {} created: task '{}' declares '{}' ({})", s.id, name, s.cron, s.time_zone);
            } else if (store_.update_schedule(s, /*set_next_run=*/true)) {
                spdlog::info("schedule {}: task '{}' now declares '{}' ({})", s.id, name, s.cron, s.time_zone);
            }
        } catch (const std::exception &e) {
            spdlog::warn("schedule of task '{}' not brought up to date: {}", name, e.what());
        }
    }
    wake();
}

}  // namespace taskhost::jobs
