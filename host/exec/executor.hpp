// Executors: where and on what a job's task code runs. The jobs layer
// decides what a job is and when it may run; an executor gives it a place
// (a worker slot now, or a place in a bounded queue), runs it there, and
// makes the calls into plugin code: validate, invoke, init. In-process
// threads are the one implementation today (in_process.hpp); worker
// processes will be the second, behind the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <taskhost/abi.h>

#include "model/outcome.hpp"
#include "util/result.hpp"

namespace taskhost::exec {

// The task code one call runs, and whose it is (log lines, crash records).
struct Target {
    const th_task_desc *desc = nullptr;
    std::string_view task;
    std::string_view plugin, version, file, hash;  // of the plugin version
    std::string_view tasks_json;                   // all its task names (a JSON array), for crash records
    bool has_validate = false;                     // desc->validate is there (or is, in a worker)
    // Where it runs: in the host's threads, or in a worker process that
    // maps the plugin's sealed image (image_fd) for generation `generation`.
    bool in_process = true;
    int image_fd = -1;
    uint64_t generation = 0;
    // Lives as long as the plugin generation: a worker process serving it
    // exits once it is gone.
    std::shared_ptr<const void> generation_alive;
};

// What running task code may ask of the job system: its own job's
// cancellation and progress, and the Scheduler service. The jobs layer
// implements it for each call.
class JobContext {
public:
    virtual ~JobContext() = default;
    virtual bool cancelled() const = 0;
    // fraction: 0..1, or -1 when unknown.
    virtual void progress(double fraction, std::string_view message) = 0;
    // Submits `task` as a new job; its id. params_json: the text the task
    // gave (a JSON object), or empty.
    virtual Result<std::string> schedule(std::string_view task, std::string_view params_json) = 0;
    // The job record JSON of job `id`.
    virtual Result<std::string> job_json(std::string_view id) = 0;
};

// Whether invoke() first checks the params, as validate() would. A job its
// submitter runs at once has them checked in the same call: for a worker
// process, one round trip instead of two. A refusal comes back as the
// outcome's params_refused, the task not having run.
enum class ParamsCheck { done, first };

// A unit of work an executor runs for the jobs layer (one job).
class Work {
public:
    virtual ~Work() = default;
    virtual void run() = 0;
};

class Executor;

// Room for one job that admit() reserved: a worker slot for the submitter
// to run it in now, or a place in the queue. Given back if never used.
class Admission {
public:
    enum class Where { none, here, queue };

    Admission() = default;
    Admission(Admission &&other) noexcept : owner_(other.owner_), where_(other.where_) { other.where_ = Where::none; }
    Admission &operator=(Admission &&other) noexcept;
    Admission(const Admission &) = delete;
    Admission &operator=(const Admission &) = delete;
    ~Admission();

    bool here() const { return where_ == Where::here; }

private:
    friend class Executor;
    Admission(Executor *owner, Where where) : owner_(owner), where_(where) {}
    Executor *owner_ = nullptr;
    Where where_ = Where::none;
};

class Executor {
public:
    virtual ~Executor() = default;

    // Reserves room for a job. With `may_run_here`, a free worker slot for
    // the caller when nothing is queued ahead; otherwise a queue place.
    // overloaded when the queue is full, unavailable when stopping.
    virtual Result<Admission> admit(bool may_run_here) = 0;
    // Runs `work` where `admission` says: here, on the calling thread, before
    // it returns; or queued for a worker. Queued work runs in `rank` order
    // (smaller first; equal ranks in the order queued): the jobs layer's
    // priorities (model::queue_rank).
    virtual void dispatch(Admission admission, std::shared_ptr<Work> work, int64_t rank) = 0;
    // Queues work that was accepted earlier (before a restart, or to run
    // later): never refused.
    virtual void requeue(std::shared_ptr<Work> work, int64_t rank) = 0;

    // Calls into plugin code. None throws.
    // Checks params as the task's invoke() would bind them.
    virtual Result<void> validate(const Target &target, std::string_view params_json) = 0;
    // Runs the task for job `job_id` and collects what it reported.
    virtual model::TaskOutcome invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                                      JobContext &job, ParamsCheck check = ParamsCheck::done) = 0;
    // Runs a plugin's init() with the host's services. `file` and `hash`
    // name the plugin version.
    virtual Result<void> run_init(const th_plugin_desc &desc, const std::string &file, const std::string &hash) = 0;

    // Gives up on `work`, whose code did not stop when it had to. In a
    // worker process, the process is killed: the work returns at once.
    // In process, its slot goes to other work at once (a new worker thread
    // takes the stuck one's place), and the thread stuck in it is let go
    // whenever the code returns. not_running if `work` is not running.
    enum class WriteOff { not_running, killed, abandoned };
    virtual WriteOff write_off(const Work &work) = 0;

    // Workers start taking queued work. stop() returns once they have
    // stopped (a written-off one is not waited for), and drops the work
    // still queued unrun (the jobs layer keeps it pending): an executor must
    // outlive the jobs layer that feeds it.
    virtual void start() = 0;
    virtual void stop() = 0;

    struct Load {
        size_t workers = 0;         // slots: at most this many jobs run at once
        size_t queued = 0;          // waiting for a slot
        size_t queue_capacity = 0;  // most that may wait
        size_t stuck = 0;           // written off, their code still running
    };
    virtual Load load() const = 0;
    // The worker processes, as GET /api/v1/system lists them (a JSON array).
    virtual std::string workers_json() const { return "[]"; }
    // What /metrics counts of them (all zero in process).
    struct WorkerStats {
        size_t alive = 0, busy = 0;
        uint64_t started = 0, recycled = 0;
        std::map<std::string, uint64_t> crashed_by_plugin;  // worker died in its task
        std::map<std::string, uint64_t> killed_by_reason;   // given_up, start_timeout
    };
    virtual WorkerStats worker_stats() const { return {}; }

protected:
    Admission grant(Admission::Where where) { return Admission(this, where); }
    // An admission given back unused.
    virtual void release(Admission::Where where) = 0;
    // Marks an admission used (its room now belongs to the work).
    static Admission::Where take(Admission &admission) {
        return std::exchange(admission.where_, Admission::Where::none);
    }
    friend class Admission;
};

inline Admission &Admission::operator=(Admission &&other) noexcept {
    if (this != &other) {
        if (where_ != Where::none) owner_->release(where_);
        owner_ = other.owner_;
        where_ = std::exchange(other.where_, Where::none);
    }
    return *this;
}

inline Admission::~Admission() {
    if (where_ != Where::none) owner_->release(where_);
}

}  // namespace taskhost::exec
