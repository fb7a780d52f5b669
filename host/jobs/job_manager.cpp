#include "jobs/job_manager.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "model/outcome.hpp"
#include "model/render.hpp"
#include "jobs/host_api.hpp"
#include "util/clock.hpp"
#include "util/json_text.hpp"
#include "util/thread_name.hpp"
#include "util/ulid.hpp"
#include "util/yield_wait.hpp"

namespace taskhost::jobs {

using model::JobStatus;
using Clock = std::chrono::steady_clock;

namespace {

// Counts a caller for as long as it waits on a job.
struct WaitingCount {
    explicit WaitingCount(std::atomic<size_t> &n) : n_(n) { n_.fetch_add(1, std::memory_order_relaxed); }
    ~WaitingCount() { n_.fetch_sub(1, std::memory_order_relaxed); }
    WaitingCount(const WaitingCount &) = delete;
    WaitingCount &operator=(const WaitingCount &) = delete;
    std::atomic<size_t> &n_;
};

JobView view_of(const ActiveJob &job) {
    return JobView{job.record, job.cancel.load() != 0, job.version, job.deleted, job.artifact_json};
}

void sink_to_string(void *opaque, const char *data, size_t len) {
    static_cast<std::string *>(opaque)->append(data, len);
}

std::string format_seconds(double s) {
    std::string out;
    json_text::append_number(out, s);
    return out;
}

}  // namespace

JobManager::JobManager(store::Store &store, HostServices &services, metrics::Metrics &metrics, Options options)
    : store_(store), services_(services), metrics_(metrics), task_stats_(metrics), options_(options) {
    options_.workers = std::max<size_t>(1, options_.workers);
    options_.queue_capacity = std::max<size_t>(1, options_.queue_capacity);
}

JobManager::~JobManager() {
    {
        std::lock_guard lock(queue_mu_);
        stopping_ = true;
    }
    queue_cv_.notify_all();
    {
        std::lock_guard lock(active_mu_);
        for (auto &[id, job] : active_) {
            int none = 0;
            job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::shutdown));
        }
    }
    {
        std::lock_guard lock(timer_mu_);
        timer_stop_ = true;
    }
    timer_cv_.notify_all();
    for (auto &t : workers_) t.join();
    if (timer_.joinable()) timer_.join();
    // The last jobs' ends are still on their way to the store, and their
    // callbacks use this object: wait until they have run. (A failed
    // commit has been reported by the store already; a destructor must not
    // throw.)
    try {
        store_.flush();
    } catch (...) {
    }
    // Jobs still queued stay pending in the store and run after a restart.
}

size_t JobManager::recover(const registry::Snapshot &snapshot) {
    auto pending = store_.recover("the host stopped while this job was running", now_us());
    size_t queued = 0;
    for (auto &record : pending) {
        auto job = std::make_shared<ActiveJob>();
        job->record = std::move(record);
        job->stored = true;
        job->recovered = true;
        job->stats = &task_stats_.of(job->record.task_name);
        job->stats->counters.submitted.fetch_add(1, std::memory_order_relaxed);  // in this process's counts
        job->task = registry::TaskLease(snapshot.find(job->record.task_name));
        {
            std::lock_guard lock(active_mu_);
            active_[job->record.id] = job;
        }
        if (!job->task) {
            finish(job, JobStatus::failed, "task '" + job->record.task_name + "' is no longer registered", std::nullopt,
                   std::nullopt);
            continue;
        }
        std::lock_guard lock(queue_mu_);
        queue_.push_back(std::move(job));
        ++queued;
    }
    return queued;
}

void JobManager::start() {
    for (size_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
    timer_ = std::thread([this] { timer_loop(); });
}

JobManager::SubmitResult JobManager::submit(std::shared_ptr<const registry::Task> task, std::string params_json,
                                            double timeout_s, std::optional<double> wait_s) {
    if (task->desc->validate != nullptr) {
        std::string error;
        th_sink sink{&error, sink_to_string};
        if (task->desc->validate(params_json.data(), params_json.size(), &sink) != TH_OK) {
            task_stats_.of(task->name).counters.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
            return {SubmitStatus::invalid_params, {}, error.empty() ? "invalid params" : error, {}};
        }
    }
    TaskStats &stats = task_stats_.of(task->name);
    stats.use_generation(task->plugin->generation);
    const bool quick = stats.quick(wait_s);
    bool run_here = false;
    {
        std::lock_guard lock(queue_mu_);
        if (stopping_) return {SubmitStatus::store_error, {}, "the host is shutting down", {}};
        if (quick && queue_.empty() && busy_ < options_.workers) {
            ++busy_;  // the caller takes a worker slot
            run_here = true;
        } else {
            if (queue_.size() + reserved_ >= options_.queue_capacity) {
                stats.counters.rejected_queue_full.fetch_add(1, std::memory_order_relaxed);
                return {SubmitStatus::queue_full, {}, "the job queue is full", {}};
            }
            ++reserved_;
        }
    }
    const bool defer_store = run_here || wait_s.has_value();
    auto job = std::make_shared<ActiveJob>();
    model::Job &r = job->record;
    r.id = new_ulid_string();
    r.task_name = task->name;
    r.params_json = std::move(params_json);
    r.submitted_at = now_us();
    r.timeout_s = timeout_s > 0 ? timeout_s : std::max(0.0, task->desc->default_timeout_s);
    job->task = registry::TaskLease(std::move(task));
    job->stats = &stats;
    job->stored = !defer_store;
    std::string id = r.id;
    {
        std::lock_guard lock(active_mu_);
        active_.emplace(id, job);
    }
    if (!defer_store) {
        try {
            store_.insert_job(r);
        } catch (const std::exception &e) {
            forget(id);
            {
                std::lock_guard lock(queue_mu_);
                --reserved_;
            }
            return {SubmitStatus::store_error, {}, e.what(), {}};
        }
    }
    job->stats->counters.submitted.fetch_add(1, std::memory_order_relaxed);
    if (!run_here) {
        {
            std::lock_guard lock(queue_mu_);
            --reserved_;
            queue_.push_back(job);
        }
        queue_cv_.notify_one();
    }
    SubmitResult result{SubmitStatus::accepted, std::move(id), {}, std::move(job)};
    result.run_here = run_here;
    return result;
}

void JobManager::run_here(const std::shared_ptr<ActiveJob> &job) {
    run(job);
    release_slot();
}

void JobManager::release_slot() {
    bool wake;
    {
        std::lock_guard lock(queue_mu_);
        --busy_;
        wake = !queue_.empty();
    }
    // A worker may be waiting for this slot.
    if (wake) queue_cv_.notify_one();
}

std::optional<JobView> JobManager::persist(const std::shared_ptr<ActiveJob> &job, std::string *error) {
    std::unique_lock lock(job->mu);
    if (job->deleted) return view_of(*job);  // nothing left to store
    if (!job->stored) {
        job->stored = true;
        // Inserted while holding the job's lock, so that the worker's later
        // writes (running mark, end) queue behind the insert.
        try {
            store_.insert_job(job->record);
        } catch (const std::exception &e) {
            if (error) *error = e.what();
            drop_locked(*job, metrics::Metrics::End::failed);  // its end is dropped; the caller answers 503
            std::string id = job->record.id;
            lock.unlock();
            job->changed.notify_all();
            job->ended.notify_all();
            forget(id);
            return std::nullopt;
        }
        return view_of(*job);
    }
    // Stored already, or its end was queued together with the record: that
    // commit is on its way (if it failed, the write error is logged).
    yield_while_committing(*job, lock);
    if (!job->ended.wait_for(lock, std::chrono::seconds(60), [&] {
            return job->durable_terminal || job->deleted || !job->finishing || !job->end_error.empty();
        })) {
        if (error) *error = "the store did not confirm the write within 60 s";
        return std::nullopt;
    }
    if (!job->end_error.empty()) {
        if (error) *error = "its end could not be committed: " + job->end_error;
        return std::nullopt;
    }
    return view_of(*job);
}

std::shared_ptr<ActiveJob> JobManager::active(const std::string &id) const {
    std::lock_guard lock(active_mu_);
    auto it = active_.find(id);
    return it == active_.end() ? nullptr : it->second;
}

std::optional<JobView> JobManager::get(const std::string &id) const {
    if (auto job = active(id)) {
        std::lock_guard lock(job->mu);
        if (!job->deleted) return view_of(*job);
    }
    auto record = store_.get_job(id);
    if (!record) return std::nullopt;
    return JobView{std::move(*record), false, 0, false, {}};
}

std::optional<JobView> JobManager::wait_terminal(const std::string &id, Clock::time_point deadline) const {
    auto job = active(id);
    if (!job) return get(id);
    return wait_terminal(job, deadline);
}

std::optional<JobView> JobManager::wait_terminal(const std::shared_ptr<ActiveJob> &job,
                                                 Clock::time_point deadline) const {
    WaitingCount counted(waiting_);
    std::unique_lock lock(job->mu);
    yield_while_committing(*job, lock);
    // An end that fails to commit wakes those already waiting; later calls
    // wait as usual (the job stays as last stored).
    const bool end_failed_before = !job->end_error.empty();
    job->ended.wait_until(lock, deadline, [&] {
        return job->durable_terminal || job->deleted || (!end_failed_before && !job->end_error.empty()) ||
               waiters_released_.load();
    });
    if (job->deleted) return std::nullopt;
    return view_of(*job);
}

void JobManager::release_waiters() {
    waiters_released_.store(true);
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

std::optional<JobView> JobManager::wait_change(const std::string &id, uint64_t seen, Clock::time_point deadline) const {
    auto job = active(id);
    if (!job) return get(id);
    WaitingCount counted(waiting_);
    std::unique_lock lock(job->mu);
    job->changed.wait_until(lock, deadline, [&] {
        return job->version != seen || job->durable_terminal || job->deleted || waiters_released_.load();
    });
    if (job->deleted) return std::nullopt;
    return view_of(*job);
}

JobManager::CancelResult JobManager::cancel(const std::string &id) {
    auto job = active(id);
    if (!job) return store_.get_job(id) ? CancelResult::already_finished : CancelResult::not_found;
    std::unique_lock lock(job->mu);
    if (job->deleted) return CancelResult::not_found;
    if (job->finishing || model::is_terminal(job->record.status)) return CancelResult::already_finished;
    if (job->record.status == JobStatus::pending) {
        lock.unlock();
        finish(job, JobStatus::canceled, std::nullopt, std::nullopt, std::nullopt);
        return CancelResult::canceled;
    }
    int none = 0;
    job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::user));
    ++job->version;
    lock.unlock();
    job->changed.notify_all();
    return CancelResult::requested;
}

bool JobManager::remove(const std::string &id) {
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
    bool existed = store_.delete_job(id);
    forget(id);
    return existed || was_active;
}

void JobManager::yield_while_committing(ActiveJob &job, std::unique_lock<std::mutex> &lock) {
    if (!job.finishing || job.settled.load(std::memory_order_relaxed)) return;
    lock.unlock();
    yield_until([&] { return job.settled.load(std::memory_order_acquire); }, kCommitYieldBudget);
    lock.lock();
}

void JobManager::drop_locked(ActiveJob &job, metrics::Metrics::End how) {
    // Dropped before it ended: it will not reach finish()'s count.
    if (!job.finishing && !model::is_terminal(job.record.status))
        job.stats->counters.finished[static_cast<size_t>(how)].fetch_add(1, std::memory_order_relaxed);
    job.deleted = true;
    job.settled.store(true, std::memory_order_release);
    ++job.version;
    int none = 0;
    job.cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::deleted));
    // It will never run: release its hold on the plugin generation.
    if (job.record.status == JobStatus::pending && !job.finishing) job.task.release();
}

size_t JobManager::queue_depth() const {
    std::lock_guard lock(queue_mu_);
    return queue_.size();
}

void JobManager::worker_loop() {
    name_this_thread("th-worker");
    for (;;) {
        std::shared_ptr<ActiveJob> job;
        {
            std::unique_lock lock(queue_mu_);
            queue_cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && busy_ < options_.workers); });
            if (stopping_) return;
            job = std::move(queue_.front());
            queue_.pop_front();
            ++busy_;
        }
        run(job);
        release_slot();
    }
}

void JobManager::run(const std::shared_ptr<ActiveJob> &job) {
    const registry::Task *task;
    std::string params, id;
    double timeout_s;
    int64_t started_at, submitted_at;
    {
        std::lock_guard lock(job->mu);
        if (job->record.status != JobStatus::pending || job->finishing || job->deleted || !job->task) return;
        running_.fetch_add(1);  // counted before anyone can see it running
        job->record.status = JobStatus::running;
        job->record.started_at = started_at = now_us();
        submitted_at = job->record.submitted_at;
        ++job->version;
        task = &*job->task;  // held by the job until finish()
        params = job->record.params_json;
        id = job->record.id;
        timeout_s = job->record.timeout_s;
        // Under the lock: a persist() after this point stores the record as
        // running; one before it has already queued the insert.
        if (job->stored) store_.mark_running(id, started_at);
    }
    job->changed.notify_all();
    if (!job->recovered) job->stats->counters.queue_wait.observe_us(started_at - submitted_at);
    if (timeout_s > 0) schedule_timeout(job, timeout_s);

    model::TaskOutcome out = services_.invoke(*task, job.get(), id, params);
    running_.fetch_sub(1);
    job->stats->record_run(now_us() - started_at);

    JobStatus status = JobStatus::completed;
    std::optional<std::string> error, traceback;
    auto reason = static_cast<CancelReason>(job->cancel.load());
    if (reason == CancelReason::timeout) {
        status = JobStatus::failed;
        error = "timed out after " + format_seconds(timeout_s) + " s";
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
    model::Artifact artifact;
    artifact.id = new_ulid_string();
    artifact.data_json = model::result_artifact_data(task->name, params, out);
    finish(job, status, std::move(error), std::move(traceback), std::move(artifact));
}

void JobManager::finish(const std::shared_ptr<ActiveJob> &job, JobStatus status, std::optional<std::string> error,
                        std::optional<std::string> traceback, std::optional<model::Artifact> artifact) {
    std::string id;
    registry::TaskLease task;
    store::Store::JobEnd end;
    {
        std::lock_guard lock(job->mu);
        if (job->finishing) return;
        task = std::move(job->task);
        if (job->deleted) {
            // DELETE already removed the record; the result is dropped.
            return;
        }
        job->finishing = true;
        id = job->record.id;
        end.started_at = job->record.started_at;
        if (!job->stored) {
            // A deferred job that ends within its wait: one write for all of it.
            job->stored = true;
            end.insert_first = job->record;
        }
    }
    // The plugin code has returned: its generation may now be released.
    task.release();
    int64_t finished_at = now_us();
    {
        auto &counters = job->stats->counters;
        const auto end_kind = status == JobStatus::completed ? metrics::Metrics::End::completed
                              : status == JobStatus::failed  ? metrics::Metrics::End::failed
                                                             : metrics::Metrics::End::canceled;
        counters.finished[static_cast<size_t>(end_kind)].fetch_add(1, std::memory_order_relaxed);
        if (end.started_at != 0) counters.run.observe_us(finished_at - end.started_at);  // 0: never ran
    }
    std::optional<std::string> artifact_id;
    std::string artifact_json;
    if (artifact) {
        artifact_id = artifact->id;
        artifact->created_at = artifact->updated_at = finished_at;
        artifact_json = model::render_artifact(*artifact);
    }
    end.status = status;
    end.finished_at = finished_at;
    end.error = error;
    end.traceback = traceback;
    end.result_artifact = std::move(artifact);
    const bool never_stored = end.insert_first.has_value();
    store_.finish_job(
        id, std::move(end),
        [this, job, id, status, finished_at, error, traceback, artifact_id,
         artifact_json = std::move(artifact_json)]() mutable {
            const size_t bytes = sizeof(ActiveJob) + artifact_json.size() + job->record.params_json.size() +
                                 (traceback ? traceback->size() : 0);
            {
                std::lock_guard lock(job->mu);
                job->record.status = status;
                job->record.finished_at = finished_at;
                job->record.error = error;
                job->record.error_traceback = traceback;
                job->record.artifact_id = artifact_id;
                job->artifact_json = std::move(artifact_json);
                job->durable_terminal = true;
                job->settled.store(true, std::memory_order_release);
                ++job->version;
            }
            job->changed.notify_all();
            job->ended.notify_all();
            retire(id, bytes);
        },
        [this, job, id, never_stored](const std::string &why) {
            // Nothing of its end is on disk: whoever waits for
            // it learns why now, not after a timeout.
            {
                std::lock_guard lock(job->mu);
                job->end_error = why;
                job->settled.store(true, std::memory_order_release);
                ++job->version;
            }
            job->changed.notify_all();
            job->ended.notify_all();
            spdlog::error("job {}: its end could not be stored ({}){}", id, why,
                          never_stored ? "; it was never stored, so it is gone"
                                       : "; it stays as last stored until a restart marks it failed");
            if (never_stored) forget(id);
        });
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

void JobManager::forget(const std::string &id) {
    std::lock_guard lock(active_mu_);
    active_.erase(id);
}

void JobManager::schedule_timeout(const std::shared_ptr<ActiveJob> &job, double seconds) {
    auto at = deadline_after(seconds);
    {
        std::lock_guard lock(timer_mu_);
        deadlines_.push_back({at, job});
        std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>{});
    }
    timer_cv_.notify_one();
}

void JobManager::timer_loop() {
    name_this_thread("th-timer");
    std::unique_lock lock(timer_mu_);
    for (;;) {
        if (timer_stop_) return;
        if (deadlines_.empty()) {
            timer_cv_.wait(lock);
            continue;
        }
        auto next = deadlines_.front().at;
        if (Clock::now() < next) {
            timer_cv_.wait_until(lock, next);
            continue;
        }
        std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>{});
        auto due = std::move(deadlines_.back());
        deadlines_.pop_back();
        if (auto job = due.job.lock()) {
            lock.unlock();
            {
                std::lock_guard jlock(job->mu);
                int none = 0;
                if (job->record.status == JobStatus::running &&
                    job->cancel.compare_exchange_strong(none, static_cast<int>(CancelReason::timeout)))
                    ++job->version;
            }
            job->changed.notify_all();
            lock.lock();
        }
    }
}

}  // namespace taskhost::jobs
