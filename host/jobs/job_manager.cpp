#include "jobs/job_manager.hpp"

#include <random>

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "exec/crash_record.hpp"
#include "jobs/active_job.hpp"
#include "model/outcome.hpp"
#include "model/render.hpp"
#include "schema/json_schema.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/thread_name.hpp"
#include "util/ulid.hpp"
#include "util/yield_wait.hpp"

namespace taskhost::jobs {

using Clock = std::chrono::steady_clock;
using model::JobStatus;

namespace {

// Progress is kept in memory on every report but written to the database at
// most this often per job, so a chatty task cannot flood the writer.
constexpr int64_t kProgressSaveIntervalUs = 100'000;

// A fleet: notices of other hosts' changes can be lost (a reconnect), so a
// waiter on a job another host holds also reads its row this often; and
// the claimer looks for jobs no live host holds this often, or at once
// when told of some, or soon again while it finds full batches.
constexpr auto kElsewherePoll = std::chrono::seconds(1);
constexpr auto kClaimPoll = std::chrono::seconds(1);
// How old a listing of the fleet's tasks may be.
constexpr auto kFleetTasksMaxAge = std::chrono::milliseconds(1000);
constexpr auto kClaimAgain = std::chrono::milliseconds(50);
// A keyed insert found the key taken (by another host, or before this
// process): the job that holds it is read instead.
constexpr char kKeyTaken[] = "the idempotency key names a job already";

// A job read from a shared store: a version that changes when what a
// client sees of it does (never 0, the version of a local job not changed).
uint64_t stored_version(const model::Job &j) {
    size_t h = std::hash<std::string>{}(j.progress_message);
    for (const double part : {static_cast<double>(j.status), static_cast<double>(j.started_at),
                              static_cast<double>(j.finished_at), j.progress, static_cast<double>(j.attempts)})
        h = h * 1'000'003 ^ std::hash<double>{}(part);
    return static_cast<uint64_t>(h) | 1;
}

// Counts a caller for as long as it waits on a job.
class WaitingCount {
public:
    explicit WaitingCount(std::atomic<size_t> &n) : n_(n) { n_.fetch_add(1, std::memory_order_relaxed); }
    ~WaitingCount() { n_.fetch_sub(1, std::memory_order_relaxed); }
    WaitingCount(const WaitingCount &) = delete;
    WaitingCount &operator=(const WaitingCount &) = delete;

private:
    std::atomic<size_t> &n_;
};

std::string format_seconds(double s) {
    std::string out;
    json_text::append_number(out, s);
    return out;
}

RetentionOptions retention_options(const JobManagerOptions &options) {
    RetentionOptions out = options.retention;
    out.idempotency_ttl_s = options.idempotency_ttl_s;
    return out;
}

// A task's retry policy with a submit's "retry" over it.
model::RetryPolicy with_override(model::RetryPolicy policy, const JobOptions &options) {
    if (options.retry_json.empty()) return policy;
    const auto given = nlohmann::json::parse(options.retry_json, nullptr, /*allow_exceptions=*/false);
    if (!given.is_discarded()) (void)model::apply_retry_json(given, policy);  // checked by the submitter
    return policy;
}

// A job whose end is being committed is usually settled within one commit:
// with job.mu held (by `lock`), yields for that long before the caller
// blocks on a condition variable.
void yield_while_committing(ActiveJob &job, std::unique_lock<std::mutex> &lock) {
    if (job.end != EndState::committing || job.settled.load(std::memory_order_relaxed)) return;
    lock.unlock();
    yield_until([&] { return job.settled.load(std::memory_order_acquire); }, kCommitYieldBudget);
    lock.lock();
}

// "task 'x' of plugin y 1.0.0 (y.so)"
std::string code_name(const exec::CodeInFlight &code) {
    return "task '" + code.task + "' of plugin " + code.plugin + " " + code.version + " (" + code.file + ")";
}

// What each job a crash record names failed of: the one whose code died,
// and the others that were running then.
std::vector<std::pair<std::string, std::string>> crash_errors(const exec::Crash &crash) {
    std::vector<std::pair<std::string, std::string>> errors;
    std::string during = crash.cause;
    if (crash.culprit) {
        if (!crash.culprit->job_id.empty())
            errors.emplace_back(crash.culprit->job_id,
                                "the job crashed the host: " + crash.cause + " in " + code_name(*crash.culprit));
        during += " in " + (crash.culprit->job_id.empty() ? "" : "job " + crash.culprit->job_id + ", ") +
                  code_name(*crash.culprit);
    }
    for (const auto &other : crash.others)
        if (!other.job_id.empty())
            errors.emplace_back(other.job_id, "the host crashed while this job was running: " + during);
    return errors;
}

exec::Target target_of(const registry::Task &task) {
    const registry::PluginInstance &p = *task.plugin;
    return {task.desc,     task.name,      p.name,      p.version,           p.file, p.hash,
            p.tasks_json,  task.has_validate, p.in_process, p.image_fd, p.generation_number,
            std::shared_ptr<const void>(task.plugin)};
}

// A task's own validate() knows its parameters best. Without one (a plain C
// plugin, say) the host holds the params to the task's declared schema.
Result<void> check_params(exec::Executor &executor, const registry::Task &task, std::string_view params_json) {
    if (task.has_validate || task.params_schema == nullptr)
        return executor.validate(target_of(task), params_json);
    const auto params = params_json.empty() ? nlohmann::json::object()
                                            : nlohmann::json::parse(params_json, nullptr, /*allow_exceptions=*/false);
    if (params.is_discarded()) return fail(ErrorKind::invalid, "params are not valid JSON");
    return task.params_schema->check_params(params);
}

// Params for a task of another host of a fleet, checked against its schema
// (a task that checks them in its own code does so where it runs).
Result<void> check_fleet_params(const FleetTasks::Task &task, std::string_view name, std::string_view params_json) {
    if (!task.params_schema) return {};
    const auto params = nlohmann::json::parse(params_json, nullptr, /*allow_exceptions=*/false);
    auto valid = params.is_discarded() ? fail(ErrorKind::invalid, "params are not valid JSON")
                                       : task.params_schema->check_params(params);
    if (!valid)
        return fail(ErrorKind::invalid,
                    "Invalid params for task '" + std::string(name) + "': " + valid.error().message);
    return {};
}

}  // namespace

// What a running task may ask of its job and of the scheduler (the
// executor's JobContext), for one call.
class TaskCall final : public exec::JobContext {
public:
    TaskCall(JobManager &jobs, ActiveJob &job) : jobs_(jobs), job_(job) {}

    bool cancelled() const override { return job_.cancel.load() != 0; }

    void progress(double fraction, std::string_view message) override {
        bool save = false;
        {
            std::lock_guard lock(job_.mu);
            job_.record.progress = fraction;
            job_.record.progress_message.assign(message);
            ++job_.version;
            const int64_t now = now_us();
            // A job not stored yet carries its progress into its first write.
            if (job_.stored && (now - job_.progress_saved_us >= kProgressSaveIntervalUs || fraction >= 1)) {
                job_.progress_saved_us = now;
                save = true;
            }
        }
        job_.changed.notify_all();
        if (save) jobs_.store_.update_progress(job_.record.id, fraction, std::string(message));
    }

    Result<std::string> schedule(std::string_view task, std::string_view params_json) override {
        return jobs_.schedule(task, params_json);
    }

    Result<std::string> job_json(std::string_view id) override {
        auto view = jobs_.get(std::string(id));
        if (!view) return fail(ErrorKind::not_found, "Job not found");
        return model::render_job(view->record, view->cancel_requested);
    }

private:
    JobManager &jobs_;
    ActiveJob &job_;
};

JobManager::JobManager(store::Store &store, registry::Registry &registry, exec::Executor &executor,
                       metrics::Metrics &metrics, Options options)
    : store_(store),
      registry_(registry),
      executor_(executor),
      options_(std::move(options)),
      fleet_host_(store.shared() ? store.describing_host() : std::string()),
      task_stats_(metrics),
      timeouts_([this](const std::shared_ptr<ActiveJob> &job, Deadlines::Kind kind, int attempt) {
          on_deadline(job, kind, attempt);
      }),
      fleet_tasks_(store),
      retention_(store, retention_options(options_),
                 [this](const std::vector<std::string> &ids) { forget_deleted(ids); }),
      recurring_(store, registry, *this, options_.recurring) {}

JobManager::~JobManager() { stop(Clock::time_point::max()); }

void JobManager::stop(Clock::time_point deadline) {
    if (stopped_.exchange(true)) return;
    recurring_.stop();
    retention_.stop();
    // First no job starts; then running tasks are asked to stop.
    stopping_.store(true);
    if (claimer_.joinable()) {
        store_.listen({});
        claimer_.request_stop();
        claimer_.join();
    }
    std::vector<std::shared_ptr<ActiveJob>> jobs;
    {
        std::lock_guard lock(active_mu_);
        for (auto &[id, job] : active_) {
            int none = 0;
            job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::shutdown));
            jobs.push_back(job);
        }
    }
    // Polled: only a shutdown waits here, and it must end by `deadline`.
    while (running_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (running_.load() > 0) {
        const GiveUpReason why{"interrupted: the host was stopping and the job did not stop in time",
                               "interrupted: the host was stopping and the job did not stop in time; its worker "
                               "process was killed"};
        // Not charged as hangs: a job that is slow to wind down at a
        // routine restart has done nothing wrong.
        for (const auto &job : jobs) give_up(job, JobStatus::failed, why, false);
    }
    timeouts_.stop();
    executor_.stop();
    // The last jobs' ends are still on their way to the store, and their
    // callbacks use this object: wait until they have run. (A failed
    // commit has been reported by the store already.)
    try {
        store_.flush_final();
    } catch (...) {
    }
}

void JobManager::on_deadline(const std::shared_ptr<ActiveJob> &job, Deadlines::Kind kind, int attempt) {
    if (kind == Deadlines::Kind::due) return make_due(job);
    // A timeout or grace of an earlier attempt (a retried job's) does nothing.
    if (kind == Deadlines::Kind::grace) {
        const bool timed_out = job->cancel.load() == static_cast<int>(CancelReason::timeout);
        const std::string after =
            format_seconds(options_.stop_grace_s) + " s " + (timed_out ? "after its timeout" : "after being canceled");
        give_up(job, timed_out ? JobStatus::failed : JobStatus::canceled,
                GiveUpReason{"did not stop within " + format_seconds(options_.stop_grace_s) + " s of " +
                                 (timed_out ? "its timeout" : "being canceled"),
                             "killed " + after + ": it did not stop"},
                true, attempt);
        return;
    }
    bool timed_out = false;
    {
        std::lock_guard lock(job->mu);
        int none = 0;
        timed_out = job->record.status == JobStatus::running && job->record.attempts == attempt &&
                    job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::timeout));
        if (timed_out) ++job->version;
    }
    job->changed.notify_all();
    if (timed_out) timeouts_.add(deadline_after(options_.stop_grace_s), job, Deadlines::Kind::grace, attempt);
}

void JobManager::give_up(const std::shared_ptr<ActiveJob> &job, JobStatus status, const GiveUpReason &reason,
                         bool charge, int attempt) {
    std::shared_ptr<const registry::Task> task;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->record.status != JobStatus::running) return;
        if (attempt >= 0 && job->record.attempts != attempt) return;
        task = job->task.shared();
    }
    const auto how = executor_.write_off(*job);
    if (how == exec::Executor::WriteOff::not_running) return;  // it returned meanwhile
    const std::string &why = how == exec::Executor::WriteOff::killed ? reason.killed : reason.abandoned;
    // Abandoned: its code may still run, so its generation stays loaded.
    // Killed: its code has stopped, and run() leaves the end to this.
    if (how == exec::Executor::WriteOff::abandoned) job->abandoned.store(true);
    count_out(*job);
    if (how == exec::Executor::WriteOff::killed)
        spdlog::error("job {} (task '{}' of plugin {} {}, {}): {}; its worker process was killed", job->record.id,
                      job->record.task_name, task ? task->plugin->name : "?", task ? task->plugin->version : "?",
                      task ? task->plugin->file : "?", why);
    else
        spdlog::error("job {} (task '{}' of plugin {} {}, {}): {}; its worker is given up on ({} stuck now)",
                      job->record.id, job->record.task_name, task ? task->plugin->name : "?",
                      task ? task->plugin->version : "?", task ? task->plugin->file : "?", why, executor_.load().stuck);
    finish(job, status, why, std::nullopt, std::nullopt);
    if (charge && options_.on_stuck && task) options_.on_stuck(*task, why);
}

void JobManager::count_out(ActiveJob &job) {
    if (!job.counted_out.exchange(true)) running_.fetch_sub(1);
}

size_t JobManager::recover(const std::optional<exec::Crash> &crash) {
    if (crash) store_.fail_jobs(crash_errors(*crash), now_us());
    auto pending = store_.recover("the host stopped while this job was running", now_us());
    const auto snapshot = registry_.snapshot();
    const auto others = tasks_of_other_hosts();
    size_t queued = 0;
    std::vector<std::string> elsewhere;
    for (auto &record : pending) {
        // A fleet: a job whose task is not loaded here, or was accepted for
        // another major version of its plugin than the one loaded now (a
        // rolling deploy), is left to another live host that has it. With
        // none, it is treated as on a single host: failed, or run here.
        auto task = snapshot->find(record.task_name);
        const bool compatible = task && (record.plugin_version.empty() ||
                                         model::major_version(task->plugin->version) ==
                                             model::major_version(record.plugin_version));
        if (!compatible)
            if (auto there = others.find(record.task_name);
                there != others.end() && (record.plugin_version.empty() ||
                                          there->second.count(std::string(model::major_version(record.plugin_version))))) {
                elsewhere.push_back(record.id);
                continue;
            }
        queue_stored(std::move(record), *snapshot);
        ++queued;
    }
    if (!elsewhere.empty()) {
        spdlog::warn(
            "{} pending job(s) need a task, or a major version of its plugin, not loaded here: left to "
            "a host of the fleet that has it",
            elsewhere.size());
        store_.release_pending(elsewhere);
    }
    return queued;
}

std::map<std::string, std::set<std::string>> JobManager::tasks_of_other_hosts() const {
    std::map<std::string, std::set<std::string>> tasks;
    if (!store_.shared()) return tasks;
    try {
        const std::string self = store_.describing_host();
        for (const auto &host : store_.hosts()) {
            if (host.id == self) continue;
            const auto plugins = nlohmann::json::parse(host.plugins_json, nullptr, /*allow_exceptions=*/false);
            if (!plugins.is_array()) continue;
            for (const auto &plugin : plugins) {
                if (!plugin.is_object() || !plugin.contains("tasks") || !plugin["tasks"].is_array()) continue;
                const std::string version = plugin.value("version", "");
                for (const auto &name : plugin["tasks"])
                    if (name.is_string()) tasks[name.get<std::string>()].insert(std::string(model::major_version(version)));
            }
        }
    } catch (const std::exception &e) {
        spdlog::warn("the fleet's hosts could not be read: {}", e.what());
    }
    return tasks;
}

void JobManager::queue_stored(model::Job record, const registry::Snapshot &snapshot) {
    auto job = std::make_shared<ActiveJob>(*this);
    job->record = std::move(record);
    job->stored = true;
    job->recovered = true;
    job->stats = &task_stats_.of(job->record.task_name);
    job->stats->counters.submitted.fetch_add(1, std::memory_order_relaxed);  // in this process's counts
    if (job->record.status == JobStatus::scheduled) {
        if (job->record.run_at > now_us()) {
            add_active(job);
            return hold_until_due(job);
        }
        job->record.status = JobStatus::pending;  // due while the host was down
        store_.job_due(job->record.id);
    }
    job->task = registry::TaskLease(snapshot.find(job->record.task_name));
    add_active(job);
    if (!job->task) {
        const std::string *unavailable = snapshot.why_unavailable(job->record.task_name);
        finish(job, JobStatus::failed,
               unavailable ? "task '" + job->record.task_name + "' cannot run: " + *unavailable
                           : "task '" + job->record.task_name + "' is no longer registered",
               std::nullopt, std::nullopt);
        return;
    }
    const int64_t rank = model::queue_rank(job->record);
    executor_.requeue(std::move(job), rank);
}

void JobManager::hold_until_due(const std::shared_ptr<ActiveJob> &job) {
    int64_t run_at;
    {
        std::lock_guard lock(job->mu);
        run_at = job->record.run_at;
        // Canceled or deleted meanwhile (even before its submit returned).
        if (job->record.status != JobStatus::scheduled || job->end != EndState::none || job->deleted ||
            job->cancel.load() != 0) {
            count_out_scheduled_locked(*job);
            return;
        }
        if (!job->counted_scheduled) {
            job->counted_scheduled = true;
            scheduled_.fetch_add(1);
        }
    }
    // The wall clock's distance, on the steady clock: make_due checks the
    // wall clock again, and waits on if it fired early.
    const int64_t wait_us = std::max<int64_t>(0, run_at - now_us());
    timeouts_.add(Clock::now() + std::chrono::microseconds(wait_us), job, Deadlines::Kind::due);
}

void JobManager::count_out_scheduled_locked(ActiveJob &job) {
    if (job.counted_scheduled) {
        job.counted_scheduled = false;
        scheduled_.fetch_sub(1);
    }
}

void JobManager::make_due(const std::shared_ptr<ActiveJob> &job) {
    if (stopping_.load()) return;  // it stays scheduled in the store
    // Fired early (the steady clock ran ahead of the wall clock): on until
    // its time.
    int64_t run_at;
    {
        std::lock_guard lock(job->mu);
        run_at = job->record.run_at;  // a retry sets it
    }
    if (run_at > now_us()) return hold_until_due(job);
    // The task as loaded now: a reload since it was submitted applies to it.
    const auto snapshot = registry_.snapshot();
    auto task = snapshot->find(job->record.task_name);
    // A fleet: the task gone from here, or loaded at another major version
    // of its plugin than the job was accepted for, and another live host
    // has it as it should be: the job is left to that host to claim.
    const std::string &accepted = job->record.plugin_version;  // fixed: read without the lock
    const bool compatible =
        task && (accepted.empty() || model::major_version(task->plugin->version) == model::major_version(accepted));
    bool elsewhere = false;
    if (!compatible && store_.shared()) {
        const auto others = tasks_of_other_hosts();
        auto there = others.find(job->record.task_name);
        elsewhere = there != others.end() &&
                    (accepted.empty() || there->second.count(std::string(model::major_version(accepted))));
    }
    {
        std::lock_guard lock(job->mu);
        if (job->record.status != JobStatus::scheduled || job->end != EndState::none || job->deleted ||
            job->cancel.load() != 0) {
            count_out_scheduled_locked(*job);
            return;
        }
        count_out_scheduled_locked(*job);
        if (elsewhere) {
            // As adopt() does for a job another host started: whoever
            // waits on it here goes on waiting on its row.
            job->handed_off.store(true);
            job->settled.store(true, std::memory_order_release);
        } else {
            job->record.status = JobStatus::pending;
            job->recovered = true;  // its params are checked again by the task that runs it
            if (task) job->task = registry::TaskLease(task);
        }
        ++job->version;
    }
    job->changed.notify_all();
    if (elsewhere) {
        job->ended.notify_all();
        forget(job->record.id);
        try {
            store_.release_pending({job->record.id});
            spdlog::info("job {}: due, and left to a host of the fleet that has its task ({} {})", job->record.id,
                         job->record.task_name, accepted.empty() ? "any version" : accepted);
        } catch (const std::exception &e) {
            spdlog::warn("job {}: due, but could not be left to another host: {}", job->record.id, e.what());
        }
        return;
    }
    if (!task) {
        const std::string *unavailable = snapshot->why_unavailable(job->record.task_name);
        finish(job, JobStatus::failed,
               unavailable ? "task '" + job->record.task_name + "' cannot run: " + *unavailable
                           : "task '" + job->record.task_name + "' is no longer registered",
               std::nullopt, std::nullopt);
        return;
    }
    try {
        store_.job_due(job->record.id);
    } catch (const std::exception &e) {
        spdlog::warn("job {}: its due mark could not be queued: {}", job->record.id, e.what());
    }
    executor_.requeue(job, model::queue_rank(job->record));
}

void JobManager::start() {
    executor_.start();
    timeouts_.start();
    retention_.start();
    if (options_.schedules) recurring_.start();
    if (!store_.shared()) return;
    // A cancel is acted on by the claimer's thread: it reads the store and
    // may wait for a commit, which the listener's thread must not.
    store_.listen({[this](const std::string &id) { remote_.changed(id); },
                   [this](const std::string &id) {
                       {
                           std::lock_guard lock(claim_mu_);
                           cancels_asked_.push_back(id);
                           claim_now_ = true;
                       }
                       claim_cv_.notify_one();
                   },
                   [this] { wake_claimer(); }});
    claimer_ = std::jthread([this](std::stop_token stop) { claim_loop(stop); });
}

// ---- a fleet: claiming jobs no live host holds --------------------------------

void JobManager::wake_claimer() {
    {
        std::lock_guard lock(claim_mu_);
        claim_now_ = true;
    }
    claim_cv_.notify_one();
}

bool JobManager::start_was_ours(ActiveJob &job, const Error &why) {
    std::vector<int64_t> unconfirmed;
    {
        std::lock_guard lock(job.mu);
        unconfirmed = job.unconfirmed_starts;
    }
    if (why.kind != ErrorKind::conflict || unconfirmed.empty() || !store_.shared()) return false;
    std::optional<model::Job> row;
    try {
        row = store_.get_job(job.record.id);
    } catch (const std::exception &) {
        return false;
    }
    if (!row || row->status != JobStatus::running ||
        std::find(unconfirmed.begin(), unconfirmed.end(), row->started_at) == unconfirmed.end())
        return false;
    spdlog::info("job {}: its start, whose commit seemed to fail, had been committed: it runs", job.record.id);
    std::lock_guard lock(job.mu);
    job.record.started_at = row->started_at;
    job.record.attempts = row->attempts;
    job.unconfirmed_starts.clear();
    return true;
}

bool JobManager::defer_start(const std::shared_ptr<ActiveJob> &job) {
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->deleted || job->cancel.load() != 0) return false;
        job->record.status = JobStatus::pending;  // as start_running found it
        if (job->unconfirmed_starts.size() < kMaxUnconfirmedStarts)
            job->unconfirmed_starts.push_back(job->record.started_at);
        job->record.started_at = 0;
        job->record.run_by.clear();
        --job->record.attempts;
        ++job->version;
    }
    job->changed.notify_all();
    std::lock_guard lock(claim_mu_);
    if (unstarted_.empty()) spdlog::warn("the database is away: jobs wait, pending, until their start can be recorded");
    unstarted_.push_back(job);
    return true;
}

void JobManager::retry_unstarted() {
    std::vector<std::shared_ptr<ActiveJob>> jobs;
    {
        std::lock_guard lock(claim_mu_);
        if (unstarted_.empty()) return;
    }
    if (!store_.check()) return;  // still away
    {
        std::lock_guard lock(claim_mu_);
        jobs.swap(unstarted_);
    }
    spdlog::info("the database is back: {} job(s) that waited to start are queued again", jobs.size());
    for (auto &job : jobs) {
        const int64_t rank = model::queue_rank(job->record);
        executor_.requeue(std::move(job), rank);
    }
}

void JobManager::claim_loop(std::stop_token stop) {
    name_this_thread("th-claim");
    bool more = false, failing = false;
    std::unique_lock lock(claim_mu_);
    while (!stop.stop_requested()) {
        claim_cv_.wait_for(lock, stop, more ? std::chrono::nanoseconds(kClaimAgain) : kClaimPoll,
                           [&] { return claim_now_; });
        if (stop.stop_requested()) return;
        claim_now_ = false;
        std::vector<std::string> cancels = std::exchange(cancels_asked_, {});
        lock.unlock();
        for (const auto &id : cancels) {
            try {
                on_cancel_asked(id);
            } catch (const std::exception &e) {
                spdlog::warn("job {}: a cancel from another host failed: {}", id, e.what());
            }
        }
        retry_unstarted();
        try {
            // After a failure (the database away), this host's own pending
            // jobs are checked first: a claim or insert committed whose
            // answer was lost left rows this host holds but does not know.
            if (failing) take_back_held();
            more = claim(more);
            failing = false;
        } catch (const std::exception &e) {
            // The store says why elsewhere (/health); said once here.
            if (!failing) spdlog::warn("claiming jobs for this host failed: {}", e.what());
            failing = true;
            more = false;
        }
        claim_more_.store(more, std::memory_order_relaxed);
        lock.lock();
    }
}

void JobManager::take_back_held() {
    auto held = store_.held_pending();
    const auto snapshot = registry_.snapshot();
    size_t taken = 0;
    for (auto &record : held) {
        if (active(record.id)) continue;
        queue_stored(std::move(record), *snapshot);
        ++taken;
    }
    if (taken) spdlog::info("{} pending job(s) this host held without knowing are queued", taken);
}

bool JobManager::claim(bool more) {
    if (stopping_.load()) return false;
    const auto load = executor_.load();
    // Claimed jobs wait in this host's queue: enough for twice the
    // workers, so the workers never starve between two claims, and not
    // more, so the rest stays for hosts with room.
    const size_t held = running_.load() + load.queued;
    if (held >= 2 * load.workers) return more;  // no room now: look again once there is
    const size_t limit =
        std::min(2 * load.workers - held, load.queue_capacity - std::min(load.queue_capacity, load.queued));
    const auto snapshot = registry_.snapshot();
    std::vector<store::Store::Runnable> runnable;
    runnable.reserve(snapshot->tasks.size());
    for (const auto &[name, task] : snapshot->tasks)
        runnable.push_back({name, std::string(model::major_version(task->plugin->version))});
    auto claimed = store_.claim_pending(runnable, limit);
    const bool full = limit > 0 && claimed.size() == limit;
    if (!claimed.empty()) spdlog::info("claimed {} job(s) no live host held", claimed.size());
    for (auto &record : claimed) {
        // Still running here: this host was cut off from the database past
        // its lease, and its retry-safe job was queued again for any host.
        // It goes on here, and its end is written as usual.
        if (active(record.id)) continue;
        queue_stored(std::move(record), *snapshot);
    }
    return full;
}

// ---- the job protocol ---------------------------------------------------------

Result<JobManager::Executed> JobManager::execute(std::shared_ptr<const registry::Task> task, std::string params_json,
                                                 const JobOptions &options, std::optional<double> wait_s,
                                                 std::stop_token abandon) {
    if (options.idempotency_key.empty())
        return execute_new(std::move(task), std::move(params_json), options, wait_s, abandon);
    return keyed(options, wait_s, abandon,
                 [&] { return execute_new(task, params_json, options, std::nullopt, abandon); });
}

Result<JobManager::Executed> JobManager::execute_new(std::shared_ptr<const registry::Task> task,
                                                     std::string params_json, const JobOptions &options,
                                                     std::optional<double> wait_s, std::stop_token abandon) {
    auto submitted = submit(std::move(task), std::move(params_json), options, wait_s, /*may_run_here=*/true);
    if (!submitted) return std::move(submitted).error();
    auto &[job, here, deferred] = *submitted;
    Executed out{job->record.id, std::nullopt};  // the id never changes: read without the lock

    std::optional<Clock::time_point> deadline;
    if (wait_s) deadline = deadline_after(*wait_s);
    if (here.here()) {
        executor_.dispatch(std::move(here), job, 0);  // a quick task, run before the answer
        std::optional<std::string> refused;
        std::shared_ptr<const registry::Task> unchecked;  // it did not run (a stop came first)
        {
            std::lock_guard lock(job->mu);
            refused = job->params_refused;
            if (job->check_params_first && !job->params_checked && !job->deleted) unchecked = job->task.shared();
        }
        // Never stored without its params checked: a restart would run it.
        if (unchecked) {
            auto valid = check_params(executor_, *unchecked, job->record.params_json);
            if (!valid && undo_refused(job, valid.error().message)) refused = valid.error().message;
            else job->stats->counters.submitted.fetch_add(1, std::memory_order_relaxed);  // a job now
        }
        if (refused)
            return fail(ErrorKind::invalid, "Invalid params for task '" + job->record.task_name + "': " + *refused);
    }
    std::optional<JobView> view;
    if (deadline) view = wait_terminal(job, *deadline, abandon, /*requester=*/true);
    // A job not stored yet must be durable before the answer: its end is on
    // its way to the store (it ran here, or ended within the wait), or the
    // wait ran out and it is stored now.
    if (deferred && !(view && model::is_terminal(view->record.status))) {
        auto stored = persist(job);
        if (!stored) return fail(ErrorKind::unavailable, "The job could not be stored: " + stored.error().message);
        view = std::move(*stored);
    }
    if (wait_s && view && model::is_terminal(view->record.status)) {
        if (view->artifact_json.empty() && view->record.artifact_id) {
            if (auto artifact = store_.get_artifact(*view->record.artifact_id))
                view->artifact_json = model::render_artifact(*artifact);
        }
        out.finished = std::move(view);
    }
    return out;
}

Result<JobManager::Executed> JobManager::execute_elsewhere(std::string_view task_name, std::string params_json,
                                                           const JobOptions &options, std::optional<double> wait_s,
                                                           std::stop_token abandon) {
    if (options.idempotency_key.empty()) return offer_new(task_name, std::move(params_json), options, wait_s, abandon);
    return keyed(options, wait_s, abandon,
                 [&] { return offer_new(task_name, params_json, options, std::nullopt, abandon); });
}

// ---- idempotency keys -----------------------------------------------------------

int64_t JobManager::keys_valid_from(int64_t now) const {
    return now - static_cast<int64_t>(options_.idempotency_ttl_s * 1e6);
}

Result<JobManager::Executed> JobManager::keyed(const JobOptions &options, std::optional<double> wait_s,
                                               std::stop_token abandon, const std::function<Result<Executed>()> &make) {
    const std::string &key = options.idempotency_key;
    const std::optional<Clock::time_point> deadline = wait_s ? std::optional(deadline_after(*wait_s)) : std::nullopt;
    // A round ends early only when the key's job was deleted meanwhile (the
    // key is free again) or another host took the key and then lost its job.
    for (int round = 0; round < 3; ++round) {
        const int64_t now = now_us();
        const int64_t valid_from = options.key_expires ? keys_valid_from(now) : 0;
        IdempotencyKeys::Claim claim;
        try {
            claim = keys_.claim(key, now, valid_from, std::chrono::seconds(30));
        } catch (const std::exception &e) {
            return fail(ErrorKind::unavailable, std::string("The job could not be stored: ") + e.what());
        }
        if (claim.kind == IdempotencyKeys::Claim::Kind::make) {
            // The store may know the key: from before a restart, or from
            // another host of a fleet.
            std::optional<model::Job> found;
            std::optional<Executed> made;
            try {
                found = store_.find_keyed_job(key, valid_from);
                if (!found) {
                    auto making = make();
                    if (making) {
                        made = std::move(*making);
                    } else if (making.error().kind != ErrorKind::conflict || making.error().message != kKeyTaken) {
                        keys_.given_up(key);
                        return making;
                    } else {
                        found = store_.find_keyed_job(key, valid_from);  // another host stored it first
                    }
                }
            } catch (const std::exception &e) {
                keys_.given_up(key);
                return fail(ErrorKind::unavailable, std::string("The job could not be stored: ") + e.what());
            }
            if (made) {
                // Stored, key and all: the submits waiting on the key get it
                // now, not after this one's wait.
                keys_.made(key, made->job_id, options.request_hash, now);
                if (!deadline) return std::move(*made);
                try {
                    auto view = wait_terminal(made->job_id, *deadline, abandon);
                    if (view && model::is_terminal(view->record.status)) {
                        if (view->artifact_json.empty() && view->record.artifact_id)
                            if (auto artifact = store_.get_artifact(*view->record.artifact_id))
                                view->artifact_json = model::render_artifact(*artifact);
                        made->finished = std::move(view);
                    }
                } catch (const std::exception &e) {  // the job is stored: the answer names it (202)
                    spdlog::warn("job {}: its wait ended early, the store could not be read: {}", made->job_id,
                                 e.what());
                }
                return std::move(*made);
            }
            if (!found) {
                keys_.given_up(key);
                continue;
            }
            keys_.made(key, found->id, found->request_hash, found->submitted_at);
            claim = {IdempotencyKeys::Claim::Kind::existing, found->id, found->request_hash};
        }
        std::optional<JobView> view;
        try {
            view = get(claim.job_id);
            if (!view) {  // deleted: the key names nothing now
                keys_.forget_job(key, claim.job_id);
                continue;
            }
            if (claim.request_hash != options.request_hash)
                return fail(ErrorKind::conflict, "Idempotency-Key '" + key +
                                                     "' was used for a different request (job " + claim.job_id +
                                                     "); send a new key for a new request");
            if (deadline && !model::is_terminal(view->record.status))
                if (auto later = wait_terminal(claim.job_id, *deadline, abandon)) view = std::move(later);
            if (view->artifact_json.empty() && view->record.artifact_id && model::is_terminal(view->record.status))
                if (auto artifact = store_.get_artifact(*view->record.artifact_id))
                    view->artifact_json = model::render_artifact(*artifact);
        } catch (const std::exception &e) {
            return fail(ErrorKind::unavailable, std::string("The job could not be read: ") + e.what());
        }
        Executed out{claim.job_id, std::nullopt, true};
        out.finished = std::move(view);  // as it is now; the answer says whether it has ended
        return out;
    }
    return fail(ErrorKind::unavailable, "Idempotency-Key '" + key + "': its job kept disappearing; retry");
}

Result<void> JobManager::read_fleet_task(std::string_view name, const FleetTasks::Task *&task,
                                         std::shared_ptr<const FleetTasks::Catalogue> &catalogue) const {
    try {
        catalogue = fleet_task(name, task);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("The fleet's tasks could not be read: ") + e.what());
    }
    // Only this host's row names it (a reload here removed it, and the row
    // has not caught up): no host has it.
    if (task && std::all_of(task->hosts.begin(), task->hosts.end(), [&](const auto &h) { return h == fleet_host_; }))
        task = nullptr;
    return {};
}

Result<JobManager::Executed> JobManager::offer_new(std::string_view task_name, std::string params_json,
                                                   const JobOptions &options, std::optional<double> wait_s,
                                                   std::stop_token abandon) {
    const FleetTasks::Task *task = nullptr;
    std::shared_ptr<const FleetTasks::Catalogue> catalogue;
    if (auto read = read_fleet_task(task_name, task, catalogue); !read) return read.error();
    if (!task) return fail(ErrorKind::not_found, "Task '" + std::string(task_name) + "' not found in registry");
    if (stopping_.load()) return fail(ErrorKind::unavailable, "the host is stopping");
    if (auto valid = check_fleet_params(*task, task_name, params_json); !valid) return valid.error();
    model::Job r;
    r.id = new_ulid_string();
    r.task_name = task_name;
    r.params_json = std::move(params_json);
    r.submitted_at = now_us();
    r.timeout_s = options.timeout_s > 0 ? options.timeout_s : std::max(0.0, task->default_timeout_s);
    r.priority = options.priority.value_or(task->default_priority);
    r.run_at = std::max<int64_t>(0, options.run_at);
    if (r.run_at > r.submitted_at) r.status = JobStatus::scheduled;  // claimed once due
    r.plugin_version = task->plugin_version;
    r.retry_safe = task->retry_safe;
    r.retry = with_override(task->retry, options);
    r.idempotency_key = options.idempotency_key;
    r.request_hash = options.request_hash;
    r.schedule_id = options.schedule_id;
    try {
        if (r.idempotency_key.empty()) store_.offer_job(r);
        else if (!store_.insert_keyed_job(r, options.key_expires ? keys_valid_from(r.submitted_at) : 0,
                                          /*for_any_host=*/true))
            return fail(ErrorKind::conflict, kKeyTaken);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("The job could not be stored: ") + e.what());
    }
    Executed out{r.id, std::nullopt};
    if (!wait_s) return out;
    // The job is stored: whatever happens to the wait, the answer names it
    // (a 202), so that a client does not submit it again.
    try {
        auto view = wait_terminal(r.id, deadline_after(*wait_s), abandon);
        if (view && model::is_terminal(view->record.status)) {
            if (view->artifact_json.empty() && view->record.artifact_id)
                if (auto artifact = store_.get_artifact(*view->record.artifact_id))
                    view->artifact_json = model::render_artifact(*artifact);
            out.finished = std::move(view);
        }
    } catch (const std::exception &e) {
        spdlog::warn("job {}: its wait ended early, the store could not be read: {}", r.id, e.what());
    }
    return out;
}

std::shared_ptr<const FleetTasks::Catalogue> JobManager::fleet_tasks() const {
    if (!store_.shared()) return nullptr;
    return fleet_tasks_.get(kFleetTasksMaxAge);
}

std::shared_ptr<const FleetTasks::Catalogue> JobManager::fleet_task(std::string_view name,
                                                                    const FleetTasks::Task *&task) const {
    task = nullptr;
    if (!store_.shared()) return nullptr;
    return fleet_tasks_.find(name, task);
}

Result<std::string> JobManager::schedule(std::string_view task_name, std::string_view params_json) {
    auto task = registry_.snapshot()->find(task_name);
    if (!task && !store_.shared())
        return fail(ErrorKind::not_found, "Task '" + std::string(task_name) + "' not found in registry");
    std::string params = "{}";
    if (!params_json.empty()) {
        auto parsed = nlohmann::json::parse(params_json, nullptr, false);
        if (parsed.is_discarded() || !(parsed.is_object() || parsed.is_null()))
            return fail(ErrorKind::invalid, "params must be a JSON object");
        if (parsed.is_object()) params = parsed.dump();
    }
    if (!task) {  // a fleet: another host may have it
        auto offered = execute_elsewhere(task_name, std::move(params), {}, std::nullopt);
        if (!offered) return std::move(offered).error();
        return std::move(offered->job_id);
    }
    // Never run on the scheduling task's own thread: that task is running.
    auto submitted = submit(std::move(task), std::move(params), {}, std::nullopt, /*may_run_here=*/false);
    if (!submitted) return std::move(submitted).error();
    return submitted->job->record.id;
}

Result<JobManager::Submission> JobManager::submit(std::shared_ptr<const registry::Task> task, std::string params_json,
                                                  const JobOptions &options, std::optional<double> wait_s,
                                                  bool may_run_here) {
    TaskStats &stats = task_stats_.of(task->name);
    stats.use_generation(task->plugin->generation_number);
    const int64_t submitted_at = now_us();
    const bool later = options.run_at > submitted_at;
    // A job its submitter may run at once has its params checked by its task
    // in the call that runs it (exec::ParamsCheck): one call into plugin code,
    // one round trip to a worker process, instead of two.
    // A keyed job is stored, key and all, before anything else (the store
    // decides between hosts that race on the key).
    const bool keyed = !options.idempotency_key.empty();
    const bool run_here = !later && !keyed && may_run_here && stats.quick(wait_s);
    const bool check_in_run = run_here && task->has_validate;
    auto refused = [&]() -> std::optional<Error> {
        auto valid = check_params(executor_, *task, params_json);
        if (valid) return std::nullopt;
        stats.counters.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
        return Error{ErrorKind::invalid, "Invalid params for task '" + task->name + "': " + valid.error().message};
    };
    if (!check_in_run)
        if (auto why = refused()) return std::move(*why);
    // A scheduled job takes no queue place until it is due; as many may be
    // held as the queue holds.
    if (later) {
        if (stopping_.load()) return fail(ErrorKind::unavailable, "The job could not be stored: the host is stopping");
        const size_t capacity = executor_.load().queue_capacity;
        if (scheduled_.load() >= capacity) {
            stats.counters.rejected_queue_full.fetch_add(1, std::memory_order_relaxed);
            return fail(ErrorKind::overloaded, "Too many scheduled jobs (" + std::to_string(capacity) +
                                                   " waiting for their time); retry later");
        }
    }
    auto admitted = later ? Result<exec::Admission>(exec::Admission{}) : executor_.admit(run_here);
    if (!admitted) {
        if (check_in_run)  // invalid params are a 400 whether or not there is room
            if (auto why = refused()) return std::move(*why);
        Error error = std::move(admitted).error();
        if (error.kind == ErrorKind::overloaded)
            stats.counters.rejected_queue_full.fetch_add(1, std::memory_order_relaxed);
        else error.message = "The job could not be stored: " + error.message;
        return error;
    }
    exec::Admission admission = std::move(*admitted);
    if (check_in_run && !admission.here())  // queued after all: checked now
        if (auto why = refused()) return std::move(*why);

    // A job that may end within the wait is stored with its end.
    const bool defer_store = !later && !keyed && (admission.here() || wait_s.has_value());
    auto job = std::make_shared<ActiveJob>(*this);
    model::Job &r = job->record;
    r.id = new_ulid_string();
    r.task_name = task->name;
    r.params_json = std::move(params_json);
    r.submitted_at = submitted_at;
    r.timeout_s = options.timeout_s > 0 ? options.timeout_s : std::max(0.0, task->desc->default_timeout_s);
    r.priority = options.priority.value_or(task->default_priority);
    r.run_at = std::max<int64_t>(0, options.run_at);
    if (later) r.status = JobStatus::scheduled;
    r.idempotency_key = options.idempotency_key;
    r.request_hash = options.request_hash;
    r.schedule_id = options.schedule_id;
    r.retry_safe = (task->desc->flags & TH_TASK_RETRY_SAFE) != 0;
    r.retry = with_override(task->retry, options);
    if (store_.shared()) r.plugin_version = task->plugin->version;  // only a fleet's store keeps it
    // A scheduled one takes its task when it is due (make_due).
    if (!later) job->task = registry::TaskLease(std::move(task));
    job->stats = &stats;
    job->stored = !defer_store;
    job->check_params_first = check_in_run && admission.here();
    add_active(job);
    if (!defer_store) {
        try {
            if (!keyed) {
                store_.insert_job(r);
            } else if (!store_.insert_keyed_job(r, options.key_expires ? keys_valid_from(r.submitted_at) : 0)) {
                forget(r.id);
                return fail(ErrorKind::conflict, kKeyTaken);
            }
        } catch (const std::exception &e) {
            forget(r.id);
            return fail(ErrorKind::unavailable, std::string("The job could not be stored: ") + e.what());
        }
    }
    // One whose params are yet to be checked counts once they pass.
    if (!job->check_params_first) stats.counters.submitted.fetch_add(1, std::memory_order_relaxed);
    if (admission.here()) return Submission{std::move(job), std::move(admission), defer_store};
    if (later) hold_until_due(job);
    else executor_.dispatch(std::move(admission), job, model::queue_rank(r));
    return Submission{std::move(job), {}, defer_store};
}

Result<JobView> JobManager::persist(const std::shared_ptr<ActiveJob> &job) {
    std::unique_lock lock(job->mu);
    if (job->deleted) return job->view();  // nothing left to store
    if (!job->stored) {
        job->stored = true;
        // Inserted while holding the job's lock, so that the worker's later
        // writes (running mark, end) queue behind the insert.
        try {
            store_.insert_job(job->record);
        } catch (const std::exception &e) {
            drop_locked(*job, metrics::Metrics::End::failed);  // its end is dropped; the caller answers 503
            const std::string id = job->record.id;
            lock.unlock();
            job->changed.notify_all();
            job->ended.notify_all();
            forget(id);
            return fail(ErrorKind::unavailable, e.what());
        }
        return job->view();
    }
    // Stored already, or its end was queued together with the record: that
    // commit is on its way.
    yield_while_committing(*job, lock);
    if (!job->ended.wait_for(lock, std::chrono::seconds(60),
                             [&] { return job->end != EndState::committing || job->deleted; }))
        return fail(ErrorKind::unavailable, "the store did not confirm the write within 60 s");
    if (job->end == EndState::lost)
        return fail(ErrorKind::unavailable, "its end could not be committed: " + job->lost_reason);
    return job->view();
}

Result<void> JobManager::check_task_params(std::string_view task_name, std::string_view params_json) const {
    if (auto task = registry_.snapshot()->find(task_name)) {
        auto valid = check_params(executor_, *task, params_json);
        if (!valid)
            return fail(ErrorKind::invalid, "Invalid params for task '" + task->name + "': " + valid.error().message);
        return {};
    }
    const FleetTasks::Task *task = nullptr;
    std::shared_ptr<const FleetTasks::Catalogue> catalogue;
    if (auto read = read_fleet_task(task_name, task, catalogue); !read) return read.error();
    if (!task) return fail(ErrorKind::not_found, "Task '" + std::string(task_name) + "' not found in registry");
    return check_fleet_params(*task, task_name, params_json);
}

// ---- reading and waiting --------------------------------------------------------

std::shared_ptr<ActiveJob> JobManager::active(const std::string &id) const {
    std::lock_guard lock(active_mu_);
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second;
}

void JobManager::add_active(const std::shared_ptr<ActiveJob> &job) {
    std::lock_guard lock(active_mu_);
    active_.insert_or_assign(job->record.id, job);
}

std::optional<JobView> JobManager::get(const std::string &id) const {
    if (auto job = active(id)) {
        std::lock_guard lock(job->mu);
        if (!job->deleted) return job->view();
    }
    auto record = store_.get_job(id);
    if (!record) return std::nullopt;
    const uint64_t version = store_.shared() ? stored_version(*record) : 0;
    return JobView{std::move(*record), false, version, {}};
}

std::vector<JobView> JobManager::list(std::optional<JobStatus> status, size_t limit, size_t offset) {
    store_.flush();
    auto records = store_.list_jobs(status, limit, offset);
    std::vector<JobView> out;
    out.reserve(records.size());
    for (auto &record : records) {
        auto job = active(record.id);
        const bool cancel_requested = job && job->cancel.load() != 0;
        out.push_back(JobView{std::move(record), cancel_requested, 0, {}});
    }
    return out;
}

size_t JobManager::count(std::optional<JobStatus> status) const { return store_.count_jobs(status); }

JobManager::Load JobManager::load() const {
    const auto executor = executor_.load();
    return {executor.workers, running_.load(), executor.queued,  executor.queue_capacity,
            waiting_.load(),  executor.stuck,  scheduled_.load()};
}

int JobManager::retry_after_s() const { return DrainRate::retry_after_s(executor_.load().queued, drain_.per_second()); }

std::optional<JobView> JobManager::wait_terminal(const std::string &id, Clock::time_point deadline,
                                                 std::stop_token abandon) const {
    for (;;) {
        auto job = active(id);
        if (!job) {
            if (!store_.shared()) return get(id);
            auto elsewhere = wait_elsewhere(id, std::nullopt, deadline, abandon);
            if (!elsewhere.local) return std::move(elsewhere.view);
            job = std::move(elsewhere.local);
        }
        auto view = wait_terminal(job, deadline, abandon, /*requester=*/false);
        if (!job->handed_off.load()) return view;  // else it is another host's now: its row is waited on
    }
}

JobManager::Elsewhere JobManager::wait_elsewhere(const std::string &id, std::optional<uint64_t> seen,
                                                 Clock::time_point deadline, std::stop_token abandon) const {
    WaitingCount counted(waiting_);
    RemoteWatch::Interest interest(remote_, id);
    for (;;) {
        const uint64_t heard = interest.changes();  // before the read: a change after it wakes the wait
        if (auto job = active(id)) return {std::nullopt, std::move(job)};  // claimed here meanwhile
        auto view = get(id);
        const bool done = !view || model::is_terminal(view->record.status) || (seen && view->version != *seen);
        if (done || Clock::now() >= deadline || waiters_released_.load() || abandon.stop_requested())
            return {std::move(view), nullptr};
        interest.wait(heard, std::min(deadline, Clock::now() + kElsewherePoll), abandon);
    }
}

std::optional<JobView> JobManager::wait_terminal(const std::shared_ptr<ActiveJob> &job, Clock::time_point deadline,
                                                 std::stop_token abandon, bool requester) const {
    WaitingCount counted(waiting_);
    // Declared before the lock: a stop wakes the waiter under the job's lock,
    // and the callback is unregistered only once the lock is released.
    std::stop_callback wake(abandon, [&job] {
        std::lock_guard lock(job->mu);
        job->ended.notify_all();
    });
    std::unique_lock lock(job->mu);
    yield_while_committing(*job, lock);
    // An end that fails to commit wakes those already waiting; later calls
    // wait as usual (the job stays as last stored).
    const bool lost_before = !requester && job->end == EndState::lost;
    job->ended.wait_until(lock, deadline, [&] {
        return job->end == EndState::committed || job->deleted || job->handed_off.load() ||
               (!lost_before && job->end == EndState::lost) || waiters_released_.load() || abandon.stop_requested();
    });
    if (job->deleted) return std::nullopt;
    return job->view();
}

std::optional<JobView> JobManager::wait_change(const std::string &id, uint64_t seen, Clock::time_point deadline,
                                               std::stop_token abandon) const {
    for (;;) {
        auto job = active(id);
        if (!job) {
            if (!store_.shared()) return get(id);
            auto elsewhere = wait_elsewhere(id, seen, deadline, abandon);
            if (!elsewhere.local) return std::move(elsewhere.view);
            job = std::move(elsewhere.local);
        }
        auto view = wait_change(job, seen, deadline, abandon);
        if (!job->handed_off.load()) return view;
    }
}

std::optional<JobView> JobManager::wait_change(const std::shared_ptr<ActiveJob> &job, uint64_t seen,
                                               Clock::time_point deadline, std::stop_token abandon) const {
    WaitingCount counted(waiting_);
    std::stop_callback wake(abandon, [&job] {
        std::lock_guard lock(job->mu);
        job->changed.notify_all();
    });
    std::unique_lock lock(job->mu);
    job->changed.wait_until(lock, deadline, [&] {
        return job->version != seen || job->end == EndState::committed || job->deleted || job->handed_off.load() ||
               waiters_released_.load() || abandon.stop_requested();
    });
    if (job->deleted) return std::nullopt;
    return job->view();
}

void JobManager::release_waiters() {
    waiters_released_.store(true);
    remote_.release();
    std::vector<std::shared_ptr<ActiveJob>> jobs;
    {
        std::lock_guard lock(active_mu_);
        jobs.reserve(active_.size());
        for (const auto &[id, job] : active_) jobs.push_back(job);
    }
    for (const auto &job : jobs) {
        // Taking the job's lock orders this after any waiter that checked
        // its predicate before the flag was set: it is waiting by now.
        { std::lock_guard lock(job->mu); }
        job->ended.notify_all();
        job->changed.notify_all();
    }
}

// ---- cancel and delete ------------------------------------------------------------

Result<JobManager::Canceled> JobManager::cancel(const std::string &id) {
    auto already_finished = [&] {
        auto view = get(id);
        return fail(ErrorKind::conflict, "Job " + id + " has already finished (status " +
                                             std::string(view ? model::to_string(view->record.status) : "unknown") +
                                             ")");
    };
    auto job = active(id);
    if (!job) {
        std::optional<model::Job> record;
        try {
            record = store_.get_job(id);
        } catch (const std::exception &e) {
            return fail(ErrorKind::unavailable, std::string("The job could not be read: ") + e.what());
        }
        if (!record) return fail(ErrorKind::not_found, "Job not found");
        if (!store_.shared() || model::is_terminal(record->status)) return already_finished();
        return cancel_elsewhere(std::move(*record));  // another host holds it
    }
    std::unique_lock lock(job->mu);
    if (job->deleted) return fail(ErrorKind::not_found, "Job not found");
    // Its end was not stored: it stays as last stored (a restart fails a
    // running job and runs a pending one), and saying "finished" would lie.
    if (job->end == EndState::lost && !model::is_terminal(job->record.status))
        return fail(ErrorKind::unavailable, "The job's end could not be stored (" + job->lost_reason + "); it stays " +
                                                std::string(model::to_string(job->record.status)) +
                                                " until the host is restarted");
    if (job->end != EndState::none || model::is_terminal(job->record.status)) {
        lock.unlock();
        return already_finished();
    }
    if (job->record.status == JobStatus::pending || job->record.status == JobStatus::scheduled) {
        // Flagged under the job's lock: from here no worker starts it
        // (start_running), so finish() may take back its task.
        int none = 0;
        job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::user));
        lock.unlock();
        finish(job, JobStatus::canceled, std::nullopt, std::nullopt, std::nullopt);
        // Answered with the committed record: done only once it is durable.
        auto view = wait_terminal(job, deadline_after(5), {}, /*requester=*/true);
        if (!view) return fail(ErrorKind::not_found, "Job not found");
        if (model::is_terminal(view->record.status)) return Canceled{true, std::move(*view)};
        std::lock_guard again(job->mu);
        if (job->end == EndState::lost)
            return fail(ErrorKind::unavailable, "The cancel could not be stored: " + job->lost_reason);
        if (job->end == EndState::committed) return Canceled{true, job->view()};  // it landed meanwhile
        return Canceled{false, std::move(*view)};  // still on its way to the disk: asked, not yet done
    }
    int none = 0;
    const bool asked = job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::user));
    if (asked) ++job->version;  // asked again (a heartbeat repeats another host's cancel): nothing changed
    // Also when its timeout came first: a retry of it is canceled instead.
    job->cancel_asked.store(true);
    JobView view = job->view();
    const int attempt = job->record.attempts;
    lock.unlock();
    if (asked) job->changed.notify_all();
    // A task that ignores the request is given up on after the grace.
    if (asked) timeouts_.add(deadline_after(options_.stop_grace_s), job, Deadlines::Kind::grace, attempt);
    return Canceled{false, std::move(view)};
}

Result<JobManager::Canceled> JobManager::cancel_elsewhere(model::Job record) {
    try {
        if (record.status == JobStatus::pending || record.status == JobStatus::scheduled) {
            // Not started yet: canceled in its row, which no host starts now.
            if (store_.cancel_pending(record.id, now_us())) {
                auto view = get(record.id);
                if (!view) return fail(ErrorKind::not_found, "Job not found");
                return Canceled{true, std::move(*view)};
            }
            auto now = store_.get_job(record.id);  // it started meanwhile, or ended
            if (!now) return fail(ErrorKind::not_found, "Job not found");
            if (model::is_terminal(now->status))
                return fail(ErrorKind::conflict, "Job " + record.id + " has already finished (status " +
                                                     std::string(model::to_string(now->status)) + ")");
            record = std::move(*now);
        }
        // Running on another host: that host asks it to stop, and gives up
        // on it after the grace, as for a cancel of its own.
        store_.ask_cancel(record.id);
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("The cancel could not be passed on: ") + e.what());
    }
    const uint64_t version = stored_version(record);
    return Canceled{false, JobView{std::move(record), true, version, {}}};
}

void JobManager::on_cancel_asked(const std::string &id) {
    auto job = active(id);
    if (!job) return;
    std::optional<model::Job> row;
    try {
        row = store_.get_job(id);
    } catch (const std::exception &e) {
        // A running job's cancel is asked again at each heartbeat.
        spdlog::warn("job {}: a cancel from another host could not be checked: {}", id, e.what());
        return;
    }
    bool code_may_run;
    {
        std::lock_guard lock(job->mu);
        if (!row && !job->stored) return;  // not stored yet: not what another host acted on
        code_may_run = job->record.status != JobStatus::pending && job->record.status != JobStatus::scheduled;
    }
    // Still to end (a cancel of a running job), or its code runs here: it
    // is canceled here, the way a cancel of this host's would.
    if ((row && !model::is_terminal(row->status)) || code_may_run) {
        if (!row) {
            std::unique_lock lock(job->mu);
            if (!job->deleted) drop_locked(*job, metrics::Metrics::End::deleted);
            lock.unlock();
            job->changed.notify_all();
            job->ended.notify_all();
            forget(id);
            return;
        }
        (void)cancel(id);
        return;
    }
    adopt(job, std::move(row));  // canceled or deleted while it waited here
}

void JobManager::adopt(const std::shared_ptr<ActiveJob> &job, std::optional<model::Job> stored) {
    const std::string id = job->record.id;  // never changes
    const bool deleted = !stored;
    const bool elsewhere = stored && !model::is_terminal(stored->status);
    registry::TaskLease task;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->deleted) return;
        count_out_scheduled_locked(*job);
        if (deleted) {
            drop_locked(*job, metrics::Metrics::End::deleted);
        } else if (elsewhere) {
            // Started by another host: its row is the truth from now on.
            job->handed_off.store(true);
            job->settled.store(true, std::memory_order_release);
            ++job->version;
        } else {
            job->record = std::move(*stored);
            job->end = EndState::committed;
            job->settled.store(true, std::memory_order_release);
            ++job->version;
        }
        if (!job->abandoned.load()) task = std::move(job->task);  // its code never ran here
    }
    task.release();
    job->changed.notify_all();
    job->ended.notify_all();
    if (deleted || elsewhere) forget(id);
    else retire(id, sizeof(ActiveJob) + job->record.params_json.size());
}

Result<void> JobManager::remove(const std::string &id) {
    bool was_active = false;
    if (auto job = active(id)) {
        std::unique_lock lock(job->mu);
        if (!job->deleted) {
            was_active = true;
            drop_locked(*job, metrics::Metrics::End::deleted);
        }
        lock.unlock();
        job->changed.notify_all();
        job->ended.notify_all();
    }
    const bool existed = store_.delete_job(id);
    forget(id);
    // Another host may hold it (a fleet): that host stops it.
    if (existed && !was_active && store_.shared()) {
        try {
            store_.ask_cancel(id);
        } catch (const std::exception &e) {
            spdlog::warn("job {}: deleted, but the host running it could not be told: {}", id, e.what());
        }
    }
    if (!existed && !was_active) return fail(ErrorKind::not_found, "Job not found");
    return {};
}

void JobManager::drop_locked(ActiveJob &job, metrics::Metrics::End how) {
    // Dropped before it ended: it will not reach finish()'s count.
    if (job.end == EndState::none && !model::is_terminal(job.record.status))
        job.stats->counters.finished[static_cast<size_t>(how)].fetch_add(1, std::memory_order_relaxed);
    job.deleted = true;
    count_out_scheduled_locked(job);
    job.settled.store(true, std::memory_order_release);
    ++job.version;
    int none = 0;
    job.cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::deleted));
    // It will never run: release its hold on the plugin generation.
    if (job.record.status == JobStatus::pending && job.end == EndState::none) job.task.release();
}

void JobManager::forget(const std::string &id) {
    std::lock_guard lock(active_mu_);
    active_.erase(id);
}

void JobManager::forget_deleted(const std::vector<std::string> &ids) {
    for (const auto &id : ids) {
        auto job = active(id);
        if (!job) continue;
        {
            std::lock_guard lock(job->mu);
            // Its row was finished: its end is committed, though the
            // callback that says so may not have run yet.
            if ((job->end != EndState::committed && job->end != EndState::committing) || job->deleted) continue;
            job->deleted = true;
            ++job->version;
        }
        job->changed.notify_all();
        job->ended.notify_all();
        forget(id);
    }
}

// ---- running and finishing -----------------------------------------------------------

std::shared_ptr<const registry::Task> JobManager::start_running(ActiveJob &job) {
    std::lock_guard lock(job.mu);
    // Canceled, deleted or shut down while it waited: it must not run.
    if (job.record.status != JobStatus::pending || job.end != EndState::none || job.cancel.load() != 0 || job.deleted ||
        !job.task || stopping_.load())
        return nullptr;
    running_.fetch_add(1);  // counted before anyone can see it running
    job.counted_out.store(false);  // again, if an earlier start was deferred (defer_start)
    job.record.status = JobStatus::running;
    job.record.started_at = now_us();
    job.record.run_by = fleet_host_;
    ++job.record.attempts;  // a persist() from now on stores it as started
    ++job.version;
    return job.task.shared();
}

Result<void> JobManager::record_start(ActiveJob &job) {
    bool stored;
    {
        std::lock_guard lock(job.mu);
        stored = job.stored;  // if not, persist() stores it already started
    }
    if (!stored) return {};
    try {
        if (store_.start_job(job.record.id, job.record.started_at)) return {};
        return fail(ErrorKind::conflict, "it was no longer pending when it was to start");
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("its start could not be recorded: ") + e.what());
    }
}

void JobManager::run(const std::shared_ptr<ActiveJob> &job) {
    const std::shared_ptr<const registry::Task> held = start_running(*job);
    if (!held) return;
    job->changed.notify_all();
    // Its start is durable before its code runs: if the host dies now, the
    // job is charged with it and is never run again.
    if (auto recorded = record_start(*job); !recorded && !start_was_ours(*job, recorded.error())) {
        count_out(*job);
        if (recorded.error().kind == ErrorKind::conflict && store_.shared()) {
            // Another host of the fleet started it first, or canceled or
            // deleted it: its row says what became of it.
            try {
                adopt(job, store_.get_job(job->record.id));
                return;
            } catch (const std::exception &) {
            }  // then it ends failed here, which its row, not pending, keeps out
        }
        // A fleet's database away: it waits, pending, until it is back.
        if (recorded.error().kind == ErrorKind::unavailable && store_.shared() && defer_start(job)) return;
        finish(job, JobStatus::failed, "the job did not start: " + recorded.error().message, std::nullopt,
               std::nullopt);
        return;
    }
    // Fixed while it runs: read without the lock.
    const model::Job &r = job->record;
    const registry::Task &task = *held;
    const int64_t started_at = r.started_at;
    if (!job->recovered && !job->check_params_first)
        job->stats->counters.queue_wait.observe_us(started_at - r.submitted_at);
    if (r.timeout_s > 0) timeouts_.add(deadline_after(r.timeout_s), job, Deadlines::Kind::timeout, r.attempts);

    TaskCall call(*this, *job);
    const int64_t invoked_at = now_us();  // the task's own time, without the wait for its start's commit
    // A stored job taken up here (recovered, or claimed in a fleet, where
    // the host that accepted it may not have had the task and checked its
    // params against the schema only): a task that checks them in its own
    // code does so now, and the job fails if it refuses them.
    const bool check_stored = job->recovered && task.has_validate;
    model::TaskOutcome out =
        executor_.invoke(target_of(task), r.id, r.params_json, call,
                         job->check_params_first || check_stored ? exec::ParamsCheck::first : exec::ParamsCheck::done);
    count_out(*job);
    if (check_stored && out.params_refused) {
        out.has_error = true;
        out.error_type.clear();
        out.error_message = "Invalid params for task '" + r.task_name + "': " + *out.params_refused;
    }
    if (job->check_params_first) {
        {
            std::lock_guard lock(job->mu);
            job->params_checked = true;
        }
        if (out.params_refused) {
            if (undo_refused(job, *out.params_refused)) return;
            // Canceled, deleted or given up on meanwhile (by its id): it is a
            // job now, and it fails with the refusal.
            out.has_error = true;
            out.error_type.clear();
            out.error_message = "Invalid params for task '" + r.task_name + "': " + *out.params_refused;
        }
        job->stats->counters.submitted.fetch_add(1, std::memory_order_relaxed);
        if (!job->recovered) job->stats->counters.queue_wait.observe_us(started_at - r.submitted_at);
    }
    const int64_t wall_us = now_us() - invoked_at;
    if (out.given_up) {  // give_up() killed its worker and records its end
        job->stats->record_cut_short(wall_us);
        return;
    }
    const auto reason = static_cast<CancelReason>(job->cancel.load());
    // A run cut short by a cancel or timeout says when that came, not how
    // long the task takes: as a sample, a task that sleeps for an hour could
    // pass for quick and run on a submitter's thread.
    if (reason == CancelReason::none) job->stats->record_run(out.code_us.value_or(wall_us), wall_us);
    else job->stats->record_cut_short(wall_us);

    JobStatus status = JobStatus::completed;
    std::optional<std::string> error, traceback;
    if (reason == CancelReason::timeout) {
        status = JobStatus::failed;
        error = "timed out after " + format_seconds(r.timeout_s) + " s";
        if (!out.has_error) {
            out.has_error = true;
            out.error_type = "taskhost::Timeout";
        }
        out.error_message = *error;
    } else if (reason == CancelReason::user || reason == CancelReason::shutdown) {
        status = JobStatus::canceled;
    } else if (out.has_error) {
        status = JobStatus::failed;
        error = out.error_type.empty() ? out.error_message : out.error_type + ": " + out.error_message;
        traceback = out.error_traceback;
    }
    if (status == JobStatus::failed && may_retry(*job, out, static_cast<int>(reason))) {
        retry_later(job, *error);
    } else {
        model::Artifact artifact;
        artifact.id = new_ulid_string();
        artifact.data_json = model::result_artifact_data(task.name, r.params_json, out);
        finish(job, status, std::move(error), std::move(traceback), std::move(artifact));
    }
    if (claim_more_.load(std::memory_order_relaxed)) wake_claimer();  // room now, and jobs wait for some
    // Given up on while it ran: its end was recorded then, and its code has
    // only now returned, so only now may its generation go.
    if (job->abandoned.load()) {
        std::lock_guard lock(job->mu);
        job->task.release();
    }
}

bool JobManager::may_retry(const ActiveJob &job, const model::TaskOutcome &out, int reason) const {
    const model::Job &r = job.record;  // fixed while it runs
    // (A host stopping cancels its running jobs; one that fails meanwhile
    // is stored scheduled for its next attempt, after the restart.)
    if (out.given_up || out.params_refused || job.cancel_asked.load()) return false;
    if (reason == static_cast<int>(CancelReason::timeout))  // however its code stopped (a Cancelled too)
        return r.attempts < r.retry.max_attempts;
    if (reason != static_cast<int>(CancelReason::none) || out.error_final) return false;
    // What running it again cannot mend.
    static const std::set<std::string, std::less<>> kFinal = {
        "taskhost::InvalidParams",  "taskhost::DeclarationError", "taskhost::Cancelled",  "taskhost::InvalidResult",
        "taskhost::ResultTooLarge", "taskhost::NoResult",         "taskhost::UnknownTask"};
    if (kFinal.count(out.error_type)) return false;
    // A crash of its worker process counts only for a task that may run twice.
    const bool crash = out.error_type == "taskhost::WorkerCrashed" || out.error_type == "taskhost::WorkerKilled" ||
                       out.error_type == "taskhost::WorkerProtocolError";
    if (crash)
        return r.retry_safe &&
               r.attempts < (r.retry.max_attempts > 1 ? r.retry.max_attempts : model::kMaxHostLossAttempts);
    return r.attempts < r.retry.max_attempts;
}

void JobManager::retry_later(const std::shared_ptr<ActiveJob> &job, const std::string &error) {
    // A job left to be stored with its end (it ran within its submitter's
    // wait) is stored now, as persist() would: its retry updates its row.
    // If it cannot be, its end is lost, and its submitter answers so.
    {
        std::unique_lock lock(job->mu);
        if (!job->stored && !job->deleted) {
            job->stored = true;
            try {
                store_.insert_job(job->record);
            } catch (const std::exception &e) {
                lock.unlock();
                end_failed(*job, e.what(), /*never_stored=*/true);
                return;
            }
        }
    }
    store::Store::JobEnd retry;
    registry::TaskLease task;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->deleted) return;
        // Its next attempt runs on its task as loaded then (make_due).
        if (!job->abandoned.load()) task = std::move(job->task);
        const model::Job &r = job->record;
        const int64_t now = now_us();
        retry.attempt_log = model::append_attempt(r.attempt_log, {r.attempts, r.started_at, now, error, r.run_by});
        thread_local std::mt19937_64 random{std::random_device{}()};
        const double unit = std::uniform_real_distribution<double>(0, 1)(random);
        retry.retry_at = now + model::retry_delay_us(r.retry, r.attempts, unit);
        retry.started_at = r.started_at;
    }
    task.release();
    job->stats->counters.retried.fetch_add(1, std::memory_order_relaxed);
    const int64_t run_at = retry.retry_at;
    std::string log = retry.attempt_log;
    store_.finish_job(
        job->record.id, std::move(retry),
        [this, job, run_at, log = std::move(log)]() mutable { retry_committed(job, run_at, std::move(log)); },
        [this, job](const std::string &why) { end_failed(*job, why, /*never_stored=*/false); });
}

void JobManager::retry_committed(const std::shared_ptr<ActiveJob> &job, int64_t run_at, std::string attempt_log) {
    bool canceled = false;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->deleted) return;
        model::Job &r = job->record;
        r.status = JobStatus::scheduled;
        r.run_at = run_at;
        r.started_at = 0;
        r.progress = -1;
        r.progress_message.clear();
        r.attempt_log = std::move(attempt_log);
        // A cancel that came while the attempt ended cancels the job; the
        // attempt's timeout is over.
        const int reason = job->cancel.load();
        canceled = reason == static_cast<int>(CancelReason::user) || job->cancel_asked.load();
        if (reason == static_cast<int>(CancelReason::timeout) && !canceled) job->cancel.store(0);
        // Its next attempt's params are checked by the task that runs it
        // (make_due), as for any stored job, not by the submitter's path.
        job->check_params_first = false;
        ++job->version;
    }
    job->changed.notify_all();
    if (canceled) return finish(job, JobStatus::canceled, std::nullopt, std::nullopt, std::nullopt);
    hold_until_due(job);  // a host stopping leaves it scheduled in the store
}

bool JobManager::undo_refused(const std::shared_ptr<ActiveJob> &job, const std::string &why) {
    // Never stored and its id not given to its submitter: it answers 400 as
    // if the params had been checked before the job was made. Unless someone
    // acted on it by its id meanwhile (it shows in /api/v1/system while it
    // runs), or it was given up on: then it has been counted as a job.
    registry::TaskLease task;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none || job->deleted || job->cancel.load() != 0 || job->abandoned.load())
            return false;
        job->params_refused = why;
        job->record.status = JobStatus::failed;  // no deadline or give-up acts on it now
        job->deleted = true;
        job->settled.store(true, std::memory_order_release);
        ++job->version;
        task = std::move(job->task);
    }
    job->changed.notify_all();
    job->ended.notify_all();
    task.release();
    job->stats->counters.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    forget(job->record.id);
    return true;
}

void JobManager::finish(const std::shared_ptr<ActiveJob> &job, JobStatus status, std::optional<std::string> error,
                        std::optional<std::string> traceback, std::optional<model::Artifact> artifact) {
    store::Store::JobEnd end;
    registry::TaskLease task;
    {
        std::lock_guard lock(job->mu);
        if (job->end != EndState::none) return;
        count_out_scheduled_locked(*job);
        if (!job->abandoned.load()) task = std::move(job->task);  // else its code still runs: keep it loaded
        if (job->deleted) return;  // DELETE already removed the record; the result is dropped
        job->end = EndState::committing;
        end.started_at = job->record.started_at;
        if (end.started_at != 0 && store_.shared())  // only a fleet's store keeps it
            if (auto ran = task ? task.shared() : job->task.shared()) end.ran_version = ran->plugin->version;
        // A deferred job that ends within its wait: one write for all of it.
        if (!job->stored) {
            job->stored = true;
            end.insert_first = job->record;
        }
    }
    // The plugin code has returned: its generation may now be released.
    task.release();
    const int64_t finished_at = now_us();
    count_end(*job, status, finished_at, end.started_at);

    // The record as it will be once committed, and its rendered artifact.
    model::Job ended;
    ended.status = status;
    ended.finished_at = finished_at;
    ended.ran_version = end.ran_version;
    ended.error = error;
    ended.error_traceback = traceback;
    std::string artifact_json;
    if (artifact) {
        ended.artifact_id = artifact->id;
        artifact->created_at = artifact->updated_at = finished_at;
        artifact_json = model::render_artifact(*artifact);
    }
    end.status = status;
    end.finished_at = finished_at;
    end.error = std::move(error);
    end.traceback = std::move(traceback);
    end.result_artifact = std::move(artifact);
    const bool never_stored = end.insert_first.has_value();
    store_.finish_job(
        job->record.id, std::move(end),
        [this, job, ended = std::move(ended), artifact_json = std::move(artifact_json)]() mutable {
            end_committed(*job, std::move(ended), std::move(artifact_json));
        },
        [this, job, never_stored](const std::string &why) { end_failed(*job, why, never_stored); });
}

void JobManager::count_end(ActiveJob &job, JobStatus status, int64_t finished_at, int64_t started_at) {
    auto &counters = job.stats->counters;
    const auto kind = status == JobStatus::completed ? metrics::Metrics::End::completed
                      : status == JobStatus::failed  ? metrics::Metrics::End::failed
                                                     : metrics::Metrics::End::canceled;
    counters.finished[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
    drain_.count();
    if (started_at != 0) counters.run.observe_us(finished_at - started_at);  // 0: never ran
}

void JobManager::end_committed(ActiveJob &job, model::Job ended, std::string artifact_json) {
    const size_t bytes = sizeof(ActiveJob) + artifact_json.size() + job.record.params_json.size() +
                         (ended.error_traceback ? ended.error_traceback->size() : 0);
    {
        std::lock_guard lock(job.mu);
        job.record.status = ended.status;
        job.record.finished_at = ended.finished_at;
        job.record.error = std::move(ended.error);
        job.record.error_traceback = std::move(ended.error_traceback);
        job.record.artifact_id = std::move(ended.artifact_id);
        if (!ended.ran_version.empty()) job.record.ran_version = std::move(ended.ran_version);
        job.artifact_json = std::move(artifact_json);
        job.end = EndState::committed;
        job.settled.store(true, std::memory_order_release);
        ++job.version;
    }
    job.changed.notify_all();
    job.ended.notify_all();
    retire(job.record.id, bytes);
}

void JobManager::end_failed(ActiveJob &job, const std::string &why, bool never_stored) {
    // Nothing of its end is on disk: whoever waits for it learns why now,
    // not after a timeout.
    {
        std::lock_guard lock(job.mu);
        job.end = EndState::lost;
        job.lost_reason = why;
        job.settled.store(true, std::memory_order_release);
        ++job.version;
    }
    job.changed.notify_all();
    job.ended.notify_all();
    spdlog::error(
        "job {}: its end could not be stored ({}){}", job.record.id, why,
        never_stored ? "; this host forgets it" : "; it stays as last stored until a restart marks it failed");
    if (never_stored) forget(job.record.id);
}

void JobManager::retire(const std::string &id, size_t bytes) {
    std::lock_guard lock(active_mu_);
    ended_.emplace_back(id, bytes);
    ended_bytes_ += bytes;
    while (ended_.size() > kKeepEndedJobs || ended_bytes_ > kKeepEndedBytes) {
        active_.erase(ended_.front().first);  // a no-op if DELETE removed it already
        ended_bytes_ -= ended_.front().second;
        ended_.pop_front();
    }
}

}  // namespace taskhost::jobs
