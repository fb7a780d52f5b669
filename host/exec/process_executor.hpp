// The worker-process executor (--isolation process): the same slots and
// queue as the in-process one, but a job's task runs in a worker process
// of its plugin generation (exec/worker_pool.hpp), so a crash, a hang or a
// memory hog costs that job and that process, never the host. The thread
// that holds a job's slot serves the worker's host-service calls itself,
// as it would run the task in process: no extra hand-off per job. Plugins
// named as trusted (--in-process-plugins) still run in process.
#pragma once

#include "exec/in_process.hpp"
#include "exec/worker_pool.hpp"

namespace taskhost::exec {

class ProcessExecutor final : public InProcessExecutor {
public:
    ProcessExecutor(store::Store &store, InProcessExecutor::Options options, WorkerPoolOptions workers,
                    WorkerFault on_fault);
    ~ProcessExecutor() override;  // stop()

    Result<void> validate(const Target &target, std::string_view params_json) override;
    model::TaskOutcome invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                              JobContext &job, ParamsCheck check = ParamsCheck::done) override;
    void stop() override;
    std::string workers_json() const override { return pool_.describe_json(); }
    WorkerStats worker_stats() const override { return pool_.stats(); }

    WorkerPool &pool() { return pool_; }

private:
    bool force_stop(const std::string &job_id) override;

    WorkerPool pool_;
};

}  // namespace taskhost::exec
