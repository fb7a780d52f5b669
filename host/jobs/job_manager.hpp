// Job lifecycle: accept (durable before the 202), queue (bounded), run on a
// fixed worker pool, finish (result artifact + terminal state committed
// together), cancel, time out, and wait for a job to change.
//
// Every job that is not yet durably terminal lives in the active map; its
// in-memory record there is the truth. Everything else is read from the store.
// A terminal state becomes visible only once it is committed together with
// the result artifact, so a client that sees "completed" can always fetch
// the artifact it names.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "registry/registry.hpp"
#include "store/store.hpp"

namespace taskhost::jobs {

class HostServices;

enum class CancelReason : int { none = 0, user = 1, timeout = 2, deleted = 3, shutdown = 4 };

struct ActiveJob {
    std::mutex mu;
    std::condition_variable changed;  // notified on every state change
    store::Job record;                // guarded by mu
    uint64_t version = 0;             // bumps on every change (guarded by mu)
    bool finishing = false;           // terminal state handed to the store (guarded by mu)
    bool durable_terminal = false;    // terminal state committed and visible (guarded by mu)
    bool deleted = false;             // DELETE removed it (guarded by mu)
    std::string artifact_json;        // the committed result artifact, rendered (guarded by mu)
    std::shared_ptr<const registry::Task> task;  // pins the plugin generation
    std::atomic<int> cancel{0};                  // CancelReason
};

// A consistent copy of a job's state.
struct JobView {
    store::Job record;
    bool cancel_requested = false;
    uint64_t version = 0;
    bool deleted = false;
    std::string artifact_json;  // set when the job just finished here: saves a read
};

class JobManager {
public:
    struct Options {
        size_t workers = 4;
        size_t queue_capacity = 10000;
    };

    JobManager(store::Store &store, HostServices &services, Options options);
    ~JobManager();  // stops the workers; running tasks are asked to cancel

    // Marks jobs left running by a crash as failed and queues the pending ones.
    // Call once, after plugins are loaded and before serving.
    size_t recover(const registry::Snapshot &snapshot);
    void start();

    enum class SubmitStatus { accepted, queue_full, invalid_params, store_error };
    struct SubmitResult {
        SubmitStatus status;
        std::string job_id;   // when accepted
        std::string message;  // otherwise
        std::shared_ptr<ActiveJob> job;
    };
    // Validates params against the task, stores the job durably, queues it.
    // params_json: the caller's params as compact JSON text ("{}" when none).
    SubmitResult submit(std::shared_ptr<const registry::Task> task, std::string params_json,
                        double timeout_s);

    std::optional<JobView> get(const std::string &id) const;
    std::shared_ptr<ActiveJob> active(const std::string &id) const;

    // Waits until the job is terminal (or gone) or the deadline passes, and
    // returns its latest state (nullopt if it does not exist).
    std::optional<JobView> wait_terminal(const std::string &id,
                                         std::chrono::steady_clock::time_point deadline) const;
    // Waits until the job's version differs from `seen` or the deadline passes.
    std::optional<JobView> wait_change(const std::string &id, uint64_t seen,
                                       std::chrono::steady_clock::time_point deadline) const;

    enum class CancelResult { not_found, already_finished, canceled, requested };
    // Pending: canceled at once. Running: asks the task to stop (cooperative).
    CancelResult cancel(const std::string &id);
    // Cancels if still active, then deletes the record. False if absent.
    bool remove(const std::string &id);

    size_t queue_depth() const;
    size_t running() const { return running_.load(); }
    size_t queue_capacity() const { return options_.queue_capacity; }
    size_t workers() const { return options_.workers; }

private:
    void worker_loop();
    void timer_loop();
    void run(const std::shared_ptr<ActiveJob> &job);
    void finish(const std::shared_ptr<ActiveJob> &job, store::JobStatus status,
                std::optional<std::string> error, std::optional<std::string> traceback,
                std::optional<store::Artifact> artifact);
    void forget(const std::string &id);
    void schedule_timeout(const std::shared_ptr<ActiveJob> &job, double seconds);

    store::Store &store_;
    HostServices &services_;
    Options options_;

    mutable std::mutex active_mu_;
    std::unordered_map<std::string, std::shared_ptr<ActiveJob>> active_;

    mutable std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<std::shared_ptr<ActiveJob>> queue_;
    size_t reserved_ = 0;  // slots promised to submissions still being stored
    bool stopping_ = false;
    std::atomic<size_t> running_{0};
    std::vector<std::thread> workers_;

    struct Deadline {
        std::chrono::steady_clock::time_point at;
        std::weak_ptr<ActiveJob> job;
        bool operator>(const Deadline &o) const { return at > o.at; }
    };
    std::mutex timer_mu_;
    std::condition_variable timer_cv_;
    std::vector<Deadline> deadlines_;  // min-heap
    bool timer_stop_ = false;
    std::thread timer_;
};

}  // namespace taskhost::jobs
