// Jobs that another host of a fleet holds, as callers here wait on them:
// each change the store hears of (Store::FleetEvents::job_changed) bumps
// the job's count and wakes its waiters, who then read the job's row. Only
// jobs someone waits on are kept.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>
#include <unordered_map>

namespace taskhost::jobs {

class RemoteWatch {
public:
    // One caller's interest in one job, for as long as it waits.
    class Interest {
    public:
        Interest(RemoteWatch &watch, std::string id);
        ~Interest();
        Interest(const Interest &) = delete;
        Interest &operator=(const Interest &) = delete;

        // Changes heard of so far: read before the job's row, and waited past.
        uint64_t changes() const;
        // Until a change after `seen`, `until`, release(), or a stop on `abandon`.
        void wait(uint64_t seen, std::chrono::steady_clock::time_point until, std::stop_token abandon) const;

    private:
        RemoteWatch &watch_;
        const std::string id_;
    };

    void changed(const std::string &id);
    // Every wait, now and later, returns at once (shutdown).
    void release();

private:
    struct Watched {
        size_t interests = 0;
        uint64_t changes = 0;
    };
    mutable std::mutex mu_;
    mutable std::condition_variable_any cv_;
    std::unordered_map<std::string, Watched> jobs_;  // guarded by mu_
    bool released_ = false;                          // guarded by mu_
};

}  // namespace taskhost::jobs
