// The registry: an immutable snapshot of every task the loaded plugin
// generations offer, swapped atomically on reload. Readers take a
// shared_ptr to the current snapshot and keep using it for the whole
// request or job, so a reload never changes what they see half-way.
#pragma once

#include <atomic>
#include <limits>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <taskhost/abi.h>

namespace taskhost::plugins {
class Generation;
}

namespace taskhost::registry {

struct Task {
    std::string name;
    std::vector<std::string> tags;
    const th_task_desc *desc = nullptr;
    // Keeps the plugin image mapped while anyone holds this task.
    std::shared_ptr<plugins::Generation> generation;
    std::string info_json;  // TaskInfo, rendered once at load
    // Lets a submitter run a task known to be quick itself. recent_run_us:
    // the longest recent run, decaying by 1/16 per run, so that one run
    // slowed by the scheduler is forgiven (microseconds; max() until the
    // task has run once). long_run_seen: a run took 100 ms or more (params
    // can make any task slow): never again, so a submitter is surprised by a
    // long run at most once.
    mutable std::atomic<int64_t> recent_run_us{std::numeric_limits<int64_t>::max()};
    mutable std::atomic<bool> long_run_seen{false};

    bool has_tags(const std::vector<std::string> &wanted) const;
};

struct Snapshot {
    uint64_t version = 0;                                                   // bumps on every swap
    std::map<std::string, std::shared_ptr<const Task>, std::less<>> tasks;  // sorted by name

    std::shared_ptr<const Task> find(std::string_view name) const;
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
