// Job deadlines: one thread that sleeps until the earliest deadline and
// hands each job whose time has come, if it still exists, to `on_due`.
// A job's timeout asks it to stop; the grace after a timeout or a cancel
// is when a job that did not stop is given up on; a scheduled job is due.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace taskhost::jobs {

struct ActiveJob;

class Deadlines {
public:
    enum class Kind { timeout, grace, due };
    // `attempt`: as given to add().
    using OnDue = std::function<void(const std::shared_ptr<ActiveJob> &job, Kind kind, int attempt)>;

    explicit Deadlines(OnDue on_due) : on_due_(std::move(on_due)) {}
    ~Deadlines() { stop(); }
    Deadlines(const Deadlines &) = delete;
    Deadlines &operator=(const Deadlines &) = delete;

    void start();
    void stop();
    // Holds the job weakly: a job that is gone by then is skipped.
    // `attempt`: which run of the job it is for (a retried job runs again).
    void add(std::chrono::steady_clock::time_point at, const std::shared_ptr<ActiveJob> &job, Kind kind,
             int attempt = 0);

private:
    struct Deadline {
        std::chrono::steady_clock::time_point at;
        std::weak_ptr<ActiveJob> job;
        Kind kind;
        int attempt;
        bool operator>(const Deadline &o) const { return at > o.at; }
    };
    void loop();

    const OnDue on_due_;
    std::mutex mu_;  // guards heap_ and stop_
    std::condition_variable cv_;
    std::vector<Deadline> heap_;  // min-heap by time
    static constexpr size_t kMinSweep = 1024;
    size_t sweep_at_ = kMinSweep;  // heap_ size at which expired entries are swept
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace taskhost::jobs
