#include "exec/in_process.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "exec/crash_record.hpp"
#include "util/thread_name.hpp"

namespace taskhost::exec {

InProcessExecutor::InProcessExecutor(store::Store &store, Options options)
    : host_api_(store, options.max_result_bytes),
      options_{std::max<size_t>(1, options.workers), std::max<size_t>(1, options.queue_capacity),
               options.max_result_bytes} {}

InProcessExecutor::~InProcessExecutor() { stop(); }

Result<Admission> InProcessExecutor::admit(bool may_run_here) {
    std::lock_guard lock(mu_);
    if (stopping_) return fail(ErrorKind::unavailable, "the host is shutting down");
    if (may_run_here && queue_.empty() && busy_ < options_.workers) {
        ++busy_;  // the submitter takes a worker slot
        return grant(Admission::Where::here);
    }
    if (queue_.size() + reserved_ >= options_.queue_capacity)
        return fail(ErrorKind::overloaded, "The job queue is full (" + std::to_string(options_.queue_capacity) +
                                               " jobs waiting); retry later");
    ++reserved_;
    return grant(Admission::Where::queue);
}

void InProcessExecutor::enqueue(std::shared_ptr<Work> work, int64_t rank) {
    queue_.emplace(std::pair{rank, queued_count_++}, std::move(work));
}

void InProcessExecutor::dispatch(Admission admission, std::shared_ptr<Work> work, int64_t rank) {
    switch (take(admission)) {
        case Admission::Where::here: {
            Runner runner;
            runner.thread = std::this_thread::get_id();
            if (!run_work(*work, runner)) release_slot();
            return;
        }
        case Admission::Where::queue: {
            {
                std::lock_guard lock(mu_);
                --reserved_;
                enqueue(std::move(work), rank);
            }
            work_cv_.notify_one();
            return;
        }
        case Admission::Where::none: return;
    }
}

void InProcessExecutor::requeue(std::shared_ptr<Work> work, int64_t rank) {
    {
        std::lock_guard lock(mu_);
        enqueue(std::move(work), rank);
    }
    work_cv_.notify_one();
}

void InProcessExecutor::release(Admission::Where where) {
    if (where == Admission::Where::here) return release_slot();
    std::lock_guard lock(mu_);
    --reserved_;
}

void InProcessExecutor::release_slot() {
    bool wake;
    {
        std::lock_guard lock(mu_);
        --busy_;
        wake = !queue_.empty();
    }
    // A worker may be waiting for this slot.
    if (wake) work_cv_.notify_one();
}

void InProcessExecutor::worker_loop() {
    name_this_thread("th-worker");
    for (;;) {
        std::shared_ptr<Work> work;
        {
            std::unique_lock lock(mu_);
            work_cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && busy_ < options_.workers); });
            if (stopping_) return;
            auto first = queue_.begin();
            work = std::move(first->second);
            queue_.erase(first);
            ++busy_;
        }
        Runner runner;
        runner.thread = std::this_thread::get_id();
        runner.worker = true;
        if (run_work(*work, runner)) return;  // written off: a new worker has this thread's place
        release_slot();
    }
}

thread_local InProcessExecutor::Runner *InProcessExecutor::current_runner_ = nullptr;

bool InProcessExecutor::run_work(Work &work, Runner &runner) {
    {
        std::lock_guard lock(mu_);
        // A retried job's next attempt may start before the last one's
        // thread has left this function: the newest registration counts.
        runners_.insert_or_assign(&work, &runner);
    }
    Runner *outer = std::exchange(current_runner_, &runner);
    work.run();
    current_runner_ = outer;
    std::lock_guard lock(mu_);
    if (auto it = runners_.find(&work); it != runners_.end() && it->second == &runner) runners_.erase(it);
    if (runner.written_off) --stuck_;  // its slot was given back when it was written off
    return runner.written_off;
}

Executor::WriteOff InProcessExecutor::write_off(const Work &work) {
    std::string job_id;
    {
        std::lock_guard lock(mu_);
        auto it = runners_.find(&work);
        if (it == runners_.end() || it->second->written_off) return WriteOff::not_running;
        job_id = it->second->job_id;
    }
    // In a worker process: killed, and its thread returns at once.
    if (!job_id.empty() && force_stop(job_id)) return WriteOff::killed;
    {
        std::lock_guard lock(mu_);
        auto it = runners_.find(&work);
        if (it == runners_.end() || it->second->written_off) return WriteOff::not_running;
        Runner &runner = *it->second;
        runner.written_off = true;
        ++stuck_;
        --busy_;
        if (runner.worker) {
            // The stuck thread leaves the pool: it is not joined at stop(),
            // and a new one keeps the pool at its size.
            auto stuck = std::find_if(workers_.begin(), workers_.end(),
                                      [&](const std::thread &t) { return t.get_id() == runner.thread; });
            if (stuck != workers_.end()) {
                stuck->detach();
                workers_.erase(stuck);
            }
            if (!stopping_) workers_.emplace_back([this] { worker_loop(); });
        }
    }
    work_cv_.notify_one();  // the slot is free
    return WriteOff::abandoned;
}

void InProcessExecutor::start() {
    std::lock_guard lock(mu_);
    if (stopping_ || !workers_.empty()) return;
    for (size_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
}

void InProcessExecutor::stop() {
    decltype(queue_) unrun;
    std::vector<std::thread> workers;
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        unrun.swap(queue_);
        workers.swap(workers_);  // written-off ones have left it: they are not waited for
    }
    work_cv_.notify_all();
    for (auto &t : workers) t.join();
    // Released here, outside the lock: the work may hold the last reference
    // to what it would have run.
}

Executor::Load InProcessExecutor::load() const {
    std::lock_guard lock(mu_);
    return {options_.workers, queue_.size(), options_.queue_capacity, stuck_};
}

Result<void> InProcessExecutor::validate(const Target &target, std::string_view params_json) {
    if (target.desc->validate == nullptr) return {};
    CrashRecord::Running running(target, {});
    std::string error;
    th_sink sink = string_sink(error);
    if (target.desc->validate(params_json.data(), params_json.size(), &sink) == TH_OK) return {};
    return fail(ErrorKind::invalid, error.empty() ? "invalid params" : error);
}

model::TaskOutcome InProcessExecutor::invoke(const Target &target, const std::string &job_id,
                                             std::string_view params_json, JobContext &job, ParamsCheck check) {
    if (check == ParamsCheck::first) {
        if (Result<void> valid = InProcessExecutor::validate(target, params_json); !valid) {
            model::TaskOutcome refused;
            refused.params_refused = std::move(valid).error().message;
            return refused;
        }
    }
    CrashRecord::Running running(target, job_id);
    return host_api_.invoke(target, job_id, params_json, job);
}

Result<void> InProcessExecutor::run_init(const th_plugin_desc &desc, const std::string &file, const std::string &hash) {
    nlohmann::json names = nlohmann::json::array();
    for (uint32_t i = 0; i < desc.task_count && desc.tasks != nullptr; ++i)
        if (desc.tasks[i].name != nullptr) names.push_back(desc.tasks[i].name);
    const std::string tasks_json = names.dump();
    Target init;
    init.task = "init";
    init.plugin = desc.name ? desc.name : "";
    init.version = desc.version ? desc.version : "";
    init.file = file;
    init.hash = hash;
    init.tasks_json = tasks_json;
    CrashRecord::Running running(init, {});
    return host_api_.run_init(desc, file);
}

}  // namespace taskhost::exec
