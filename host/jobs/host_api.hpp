// The services table (th_host_api) the host hands to plugin code, and the
// per-invocation state behind the opaque th_call.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <taskhost/abi.h>

#include "model/outcome.hpp"
#include "store/store.hpp"

namespace taskhost::registry {
class Registry;
struct Task;
}  // namespace taskhost::registry

namespace taskhost::jobs {

class JobManager;
struct ActiveJob;

class HostServices {
public:
    HostServices(store::Store &store, registry::Registry &registry);
    ~HostServices();

    void set_job_manager(JobManager *jobs) { jobs_ = jobs; }
    const th_host_api *api() const { return &api_; }
    store::Store &store() { return store_; }
    registry::Registry &registry() { return registry_; }
    JobManager *jobs() { return jobs_; }

    // Runs a task's invoke() for `job` (null outside jobs) and collects what
    // it reported. Never throws; a task that reports nothing yields a null result.
    model::TaskOutcome invoke(const registry::Task &task, ActiveJob *job, const std::string &job_id,
                       const std::string &params_json);
    // Runs a plugin's init() with a load-time call.
    Result<void> run_init(const th_plugin_desc &desc, const std::string &file);

    // Task database connections are pooled: opening one per call is costly.
    std::unique_ptr<store::TaskConnection> checkout_connection();
    void checkin_connection(std::unique_ptr<store::TaskConnection> conn);

private:
    store::Store &store_;
    registry::Registry &registry_;
    JobManager *jobs_ = nullptr;
    th_host_api api_{};
    std::mutex pool_mu_;
    std::vector<std::unique_ptr<store::TaskConnection>> pool_;
};

}  // namespace taskhost::jobs

// The definition of the ABI's opaque call handle.
struct th_call {
    taskhost::jobs::HostServices *services = nullptr;
    taskhost::jobs::ActiveJob *job = nullptr;  // null during plugin init
    std::string job_id;
    std::string log_name;  // "plugin/task" for log lines
    taskhost::model::TaskOutcome outcome;
    std::unique_ptr<taskhost::store::TaskConnection> conn;  // lent while the call runs
    int64_t last_progress_persist_us = 0;
};
