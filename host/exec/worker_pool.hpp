// Worker processes, the host's side: starting them (exec of this binary in
// worker mode, from one long-lived thread so that their parent-death signal
// is tied to the host, not to whichever thread needed a worker), running a
// job on one while serving the host services it calls, and keeping idle
// ones per plugin generation for the next job.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "exec/executor.hpp"
#include "exec/host_api.hpp"
#include "exec/worker_protocol.hpp"
#include "model/outcome.hpp"
#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace taskhost::exec {

// What the kernel enforces on each worker process (0 / empty: no limit).
struct WorkerLimits {
    uint64_t memory_bytes = 0;  // --worker-memory: RLIMIT_AS
    uint64_t cpu_seconds = 0;   // --worker-cpu-seconds: RLIMIT_CPU, over the worker's life
    uint64_t max_jobs = 0;      // --worker-max-jobs: replaced after this many jobs
    std::string user;           // --worker-user: runs as this user (the host must be root)
};

struct WorkerPoolOptions {
    std::string binary = "/proc/self/exe";  // this program, even if the file was replaced since
    WorkerLimits limits;
    std::chrono::milliseconds start_timeout{10000};  // exec, load and init() of a new worker
    size_t max_idle = 8;                             // idle workers kept, over all generations
    size_t max_frame = (16u << 20) + (1u << 20);     // the largest frame a worker may send
};

// A worker died or was killed while it ran a job: told with the job's
// target and why (a crash of its plugin version, for the quarantine).
using WorkerFault = std::function<void(const Target &target, const std::string &why)>;

class WorkerProcess;

class WorkerPool {
public:
    WorkerPool(HostApi &host_api, WorkerPoolOptions options, WorkerFault on_fault);
    ~WorkerPool();  // every worker is asked to exit, then killed
    WorkerPool(const WorkerPool &) = delete;
    WorkerPool &operator=(const WorkerPool &) = delete;

    // Runs `target` for `job_id` in a worker of its generation (an idle one,
    // or one started now), with `check_params` first checking the params
    // there (a refusal: the outcome's params_refused). Never throws: a worker
    // that cannot start, dies or is killed fails the job with why.
    model::TaskOutcome invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                              JobContext &job, bool check_params);
    // Checks params in a worker of the target's generation.
    Result<void> validate(const Target &target, std::string_view params_json);
    // Kills the worker running job `job_id` now (its invoke() returns at
    // once); `why` becomes the job's error. False if none runs it.
    bool kill_job(const std::string &job_id, const std::string &why);

    // GET /api/v1/system: one entry per worker.
    std::string describe_json() const;
    Executor::WorkerStats stats() const;
    void stop();

private:
    struct Spawned;
    std::shared_ptr<WorkerProcess> take_idle(const Target &target);
    // Starts and greets a new worker for `target`'s generation (through
    // the spawner thread, or on it).
    Result<std::shared_ptr<WorkerProcess>> start(const Target &target, bool on_spawner = false);
    // A worker of `target`'s generation died in a job: a replacement is
    // started in the background, later after each crash in a row.
    void replace_after_crash(const Target &target);
    void start_due_replacements();
    // Back to the idle list, or retired (generation gone, --worker-max-jobs).
    void give_back(std::shared_ptr<WorkerProcess> worker);
    // Exits idle workers whose generation is gone; runs on the spawner.
    void sweep();
    void spawner_loop();
    Result<Spawned> spawn_on_spawner(const Target &target);

    HostApi &host_api_;
    const WorkerPoolOptions options_;
    const WorkerFault on_fault_;

    mutable std::mutex mu_;  // guards the state below
    std::deque<std::shared_ptr<WorkerProcess>> idle_;  // most recently used first
    std::map<std::string, std::shared_ptr<WorkerProcess>> busy_;  // by job id
    std::vector<std::shared_ptr<WorkerProcess>> starting_;
    // One worker per generation checks params for submits, one at a time:
    // validation is quick, and a burst of submits must not start a worker
    // each.
    struct Validator {
        std::mutex mu;  // held for a whole check
        std::shared_ptr<WorkerProcess> worker;
        std::weak_ptr<const void> alive;
    };
    std::map<uint64_t, std::shared_ptr<Validator>> validators_;  // by generation
    Executor::WorkerStats stats_;  // alive and busy are counted when asked
    bool stopping_ = false;

    // The spawner thread: starts processes for the other threads.
    struct SpawnRequest;
    std::mutex spawn_mu_;
    std::condition_variable spawn_cv_;
    std::deque<SpawnRequest *> spawn_queue_;
    // Replacements of crashed workers, by generation: a copy of the target
    // (holding its generation) and when it may start.
    struct Replacement;
    std::map<uint64_t, std::shared_ptr<Replacement>> replacements_;
    uint64_t replacements_added_ = 0;  // wakes the spawner for a replacement due at once
    std::map<uint64_t, int> crash_streak_;  // crashes in a row, by generation (mu_)
    bool spawner_stop_ = false;
    std::thread spawner_;
};

}  // namespace taskhost::exec
