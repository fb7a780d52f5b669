// The registry: an immutable snapshot of every task the loaded plugin
// generations offer, swapped atomically on reload. Readers take a
// shared_ptr to the current snapshot and keep using it for the whole
// request or job, so a reload never changes what they see half-way.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <taskhost/abi.h>

#include "model/retry.hpp"

namespace taskhost::schema {
class JsonSchema;
}  // namespace taskhost::schema

namespace taskhost::registry {

// The plugin generation a task comes from, as the registry and the jobs
// see it. It lives inside the loaded generation (plugins/), and a pointer
// to it keeps that generation, and so its code, loaded.
struct PluginInstance {
    std::string file;  // name inside the plugins folder
    std::string name;
    std::string version;
    std::string hash;               // SHA-256 of the file's bytes, hex: names this version
    std::string tasks_json = "[]";  // its task names, a JSON array
    uint64_t generation_number = 0;
    // The sealed in-memory file its code is loaded from (owned by the
    // generation, open while it lives): what a worker process maps.
    int image_fd = -1;
    // Its tasks run in the host's own threads (--isolation in-process, or
    // one of --in-process-plugins); otherwise in worker processes.
    bool in_process = true;
    // Jobs accepted on this generation that may still call its code (a
    // TaskLease each).
    mutable std::atomic<int64_t> in_flight{0};
};

struct Task {
    std::string name;
    std::vector<std::string> tags;
    const th_task_desc *desc = nullptr;                 // the host's copy, in its plugin generation
    bool has_validate = false;                          // the plugin checks its params itself (validate())
    int default_priority = 0;                           // a job's, when its submitter gives none
    model::RetryPolicy retry;                           // a job's, unless its submitter overrides it
    const schema::JsonSchema *params_schema = nullptr;  // compiled desc->params_schema_json, same owner
    std::shared_ptr<const PluginInstance> plugin;       // keeps the code loaded
    std::string info_json;                              // TaskInfo, rendered once at load

    bool has_tags(const std::vector<std::string> &wanted) const;
};

// A job's hold on its task: keeps the task's generation loaded and counted
// in its in_flight until released, when the job will not call its code
// again. Move-only.
class TaskLease {
public:
    TaskLease() = default;
    explicit TaskLease(std::shared_ptr<const Task> task) : task_(std::move(task)) {
        if (task_) task_->plugin->in_flight.fetch_add(1, std::memory_order_relaxed);
    }
    TaskLease(TaskLease &&other) noexcept : task_(std::move(other.task_)) {}
    TaskLease &operator=(TaskLease &&other) noexcept {
        if (this != &other) {
            release();
            task_ = std::move(other.task_);
        }
        return *this;
    }
    TaskLease(const TaskLease &) = delete;
    TaskLease &operator=(const TaskLease &) = delete;
    ~TaskLease() { release(); }

    void release() {
        if (auto task = std::exchange(task_, nullptr)) task->plugin->in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
    explicit operator bool() const { return task_ != nullptr; }
    // Another hold on the task (not counted in in_flight).
    std::shared_ptr<const Task> shared() const { return task_; }
    const Task &operator*() const { return *task_; }
    const Task *operator->() const { return task_.get(); }

private:
    std::shared_ptr<const Task> task_;
};

struct Snapshot {
    uint64_t version = 0;                                                   // bumps on every swap
    std::map<std::string, std::shared_ptr<const Task>, std::less<>> tasks;  // sorted by name
    // Tasks that exist but cannot run now (their plugin version is
    // quarantined), with why.
    std::map<std::string, std::string, std::less<>> unavailable;

    std::shared_ptr<const Task> find(std::string_view name) const;
    // Why task `name` cannot run, if it is one of the unavailable.
    const std::string *why_unavailable(std::string_view name) const;
};

class Registry {
public:
    Registry() : current_(std::make_shared<const Snapshot>()) {}
    // A mutex held only to copy one pointer: as cheap as libstdc++'s
    // atomic<shared_ptr> (which spins on a lock bit internally) and
    // visible to ThreadSanitizer.
    std::shared_ptr<const Snapshot> snapshot() const {
        std::lock_guard lock(mu_);
        return current_;
    }
    void publish(std::shared_ptr<const Snapshot> next) {
        std::shared_ptr<const Snapshot> previous;
        {
            std::lock_guard lock(mu_);
            previous = std::exchange(current_, std::move(next));
        }
        // `previous` may be the last reference: release it outside the lock.
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Snapshot> current_;
};

}  // namespace taskhost::registry
