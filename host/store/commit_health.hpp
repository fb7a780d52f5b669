// Whether a store's commits work, for its health check: the reason the
// last commit failed (empty once one succeeds again), and whether a probe
// (a small commit that writes, queued by the check) is on its way. Both
// stores' committers keep one.
#pragma once

#include <algorithm>
#include <atomic>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <variant>

#include "store/write_queue.hpp"

namespace taskhost::store {

class CommitHealth {
public:
    // Why the last commit failed; empty once one succeeds again.
    std::string failure() const {
        if (!failing_.load(std::memory_order_acquire)) return {};
        std::lock_guard lock(mu_);
        return last_failure_;
    }
    bool failing() const { return failing_.load(std::memory_order_relaxed); }
    // Empty: commits work (again). Nothing clears a latched failure.
    void set_failure(std::string what) {
        std::lock_guard lock(mu_);
        if (latched_.load(std::memory_order_relaxed)) return;
        failing_.store(!what.empty(), std::memory_order_release);
        last_failure_ = std::move(what);
    }
    // A failure no later commit can undo (an fsync that failed: the kernel
    // may have dropped the dirty pages, so a retry that succeeds proves
    // nothing, as PostgreSQL learned in 2018). The store fails every write
    // from now on; only a restart, which recovers from what is on disk,
    // clears it.
    void latch(std::string what) {
        std::lock_guard lock(mu_);
        latched_.store(true, std::memory_order_release);
        failing_.store(true, std::memory_order_release);
        last_failure_ = std::move(what);
    }
    // The latch for an fsync that failed, in the words /health shows.
    void latch_fsync_failure(const std::string &detail) {
        latch("fsync failed (" + detail +
              "): writes are refused until the host is restarted, because what the kernel held for the database "
              "may be lost");
    }
    // No lock: task code asks before each statement.
    bool latched() const { return latched_.load(std::memory_order_acquire); }
    // True when the caller is to queue a Probe; false while one is queued,
    // or when latched (a probe could not undo it, and would be refused).
    bool want_probe() { return !latched() && !probe_pending_.exchange(true); }
    // After each batch: a probe it carried is no longer on its way.
    void batch_done(std::span<const Write> batch) {
        if (probe_pending_.load(std::memory_order_relaxed) &&
            std::any_of(batch.begin(), batch.end(),
                        [](const Write &w) { return std::holds_alternative<Probe>(w.op); }))
            probe_pending_.store(false, std::memory_order_relaxed);
    }

private:
    mutable std::mutex mu_;
    std::string last_failure_;                // guarded by mu_
    std::atomic<bool> latched_{false};        // set under mu_, never cleared
    std::atomic<bool> failing_{false};        // !last_failure_.empty()
    std::atomic<bool> probe_pending_{false};  // a probe is queued (at most one)
};

}  // namespace taskhost::store
