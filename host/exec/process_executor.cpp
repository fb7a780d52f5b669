#include "exec/process_executor.hpp"

namespace taskhost::exec {

ProcessExecutor::ProcessExecutor(store::Store &store, InProcessExecutor::Options options, WorkerPoolOptions workers,
                                 WorkerFault on_fault)
    : InProcessExecutor(store, options), pool_(host_api(), [&] {
          workers.max_frame = options.max_result_bytes + (1u << 20);  // a result, and the frame around it
          return std::move(workers);
      }(), std::move(on_fault)) {}

ProcessExecutor::~ProcessExecutor() { stop(); }

Result<void> ProcessExecutor::validate(const Target &target, std::string_view params_json) {
    if (target.in_process) return InProcessExecutor::validate(target, params_json);
    if (!target.has_validate) return {};
    return pool_.validate(target, params_json);
}

model::TaskOutcome ProcessExecutor::invoke(const Target &target, const std::string &job_id,
                                           std::string_view params_json, JobContext &job, ParamsCheck check) {
    if (target.in_process) return InProcessExecutor::invoke(target, job_id, params_json, job, check);
    if (current_runner_ != nullptr) {
        std::lock_guard lock(mu_);
        current_runner_->job_id = job_id;  // how write_off() finds its worker
    }
    return pool_.invoke(target, job_id, params_json, job, check == ParamsCheck::first && target.has_validate);
}

bool ProcessExecutor::force_stop(const std::string &job_id) { return pool_.kill_job(job_id, "given up on"); }

void ProcessExecutor::stop() {
    InProcessExecutor::stop();
    pool_.stop();
}

}  // namespace taskhost::exec
