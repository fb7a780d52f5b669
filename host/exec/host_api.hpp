// The services table (th_host_api) plugin code calls, and the state of one
// call behind the ABI's opaque th_call. Artifacts and the task database are
// the store's; cancellation, progress and the scheduler are asked of the
// call's JobContext (the jobs layer).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <taskhost/abi.h>

#include "exec/executor.hpp"
#include "model/outcome.hpp"
#include "store/store.hpp"
#include "util/result.hpp"

namespace taskhost::exec {

// A th_sink that appends to `out` (which must outlive it).
th_sink string_sink(std::string &out);

class HostApi {
public:
    // max_result_bytes bounds a task's result and each artifact it saves.
    HostApi(store::Store &store, size_t max_result_bytes);
    ~HostApi();
    HostApi(const HostApi &) = delete;
    HostApi &operator=(const HostApi &) = delete;

    store::Store &store() { return store_; }
    size_t max_result_bytes() const { return max_result_bytes_; }

    // Runs a task's invoke() for `job` and collects what it reported.
    model::TaskOutcome invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                              JobContext &job);
    // The same in steps, for task code that runs elsewhere (a worker
    // process) and reaches the services through table(): a call for `job`
    // (null: a plugin's init), then what it reported once its code
    // returned `status`.
    void open_call(th_call &call, const Target &target, const std::string &job_id, JobContext *job);
    model::TaskOutcome close_call(th_call &call, th_status status);
    const th_host_api &table() const { return api_; }
    // Runs a plugin's init() with a load-time call (no job: no scheduler).
    Result<void> run_init(const th_plugin_desc &desc, const std::string &file);

    // Task database connections are pooled: opening one per call is costly.
    std::unique_ptr<store::TaskConnection> checkout_connection();
    void checkin_connection(std::unique_ptr<store::TaskConnection> conn);

private:
    store::Store &store_;
    const size_t max_result_bytes_;
    th_host_api api_{};
    std::mutex pool_mu_;  // guards pool_
    std::vector<std::unique_ptr<store::TaskConnection>> pool_;
};

}  // namespace taskhost::exec

// The definition of the ABI's opaque call handle.
struct th_call {
    taskhost::exec::HostApi *host = nullptr;
    taskhost::exec::JobContext *job = nullptr;  // null during plugin init
    const taskhost::exec::Target *target = nullptr;  // null during plugin init
    std::string job_id;
    std::string log_name;  // "plugin/task" for log lines
    taskhost::model::TaskOutcome outcome;
    std::unique_ptr<taskhost::store::TaskConnection> conn;  // lent while the call runs
};
