#include "jobs/retention.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "util/clock.hpp"
#include "util/thread_name.hpp"

namespace taskhost::jobs {

Retention::Retention(store::Store &store, Options options, std::function<void(const std::vector<std::string> &)> forget)
    : store_(store), options_(std::move(options)), forget_(std::move(forget)) {}

void Retention::start() {
    if (options_.finished_s <= 0 && options_.max_jobs == 0) return;
    // Said once: on the first start after an upgrade it deletes old history.
    spdlog::info("retention: finished jobs are deleted with their result artifacts {}{}{} (every {} s)",
                 options_.finished_s > 0 ? "once older than " + std::to_string(int64_t(options_.finished_s)) + " s"
                                         : std::string(),
                 options_.finished_s > 0 && options_.max_jobs > 0 ? ", and " : "",
                 options_.max_jobs > 0 ? "beyond the newest " + std::to_string(options_.max_jobs) : std::string(),
                 interval_s());
    thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
}

void Retention::stop() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    wake_.notify_all();
    thread_.join();
}

double Retention::interval_s() const {
    if (options_.interval_s > 0) return options_.interval_s;
    if (options_.finished_s <= 0) return 10;
    return std::clamp(options_.finished_s / 10, 1.0, 60.0);
}

Retention::Stats Retention::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

Result<Retention::Deleted> Retention::delete_finished(int64_t finished_before, std::optional<model::JobStatus> status,
                                                      int64_t keep_keyed_since, std::stop_token stop) {
    Deleted done;
    try {
        for (;;) {
            const auto began = std::chrono::steady_clock::now();
            auto batch = store_.prune_jobs(finished_before, status, options_.batch, keep_keyed_since);
            const auto took = std::chrono::steady_clock::now() - began;
            done.jobs += batch.jobs.size();
            done.artifacts += batch.artifacts;
            {
                std::lock_guard lock(mu_);
                stats_.jobs += batch.jobs.size();
                stats_.artifacts += batch.artifacts;
            }
            if (!batch.jobs.empty() && forget_) forget_(batch.jobs);
            if (batch.jobs.size() < options_.batch || stop.stop_requested()) return done;
            // The writer is left to other writes for as long as the batch
            // had it (its wait in the queue included): a purge takes at most
            // half of it, and a submit waits behind one batch at most.
            std::unique_lock lock(wake_mu_);
            wake_.wait_for(lock, stop, took, [] { return false; });
            if (stop.stop_requested()) return done;
        }
    } catch (const std::exception &e) {
        return fail(ErrorKind::unavailable, std::string("finished jobs could not be deleted: ") + e.what());
    }
}

void Retention::pass(std::stop_token stop) {
    int64_t cutoff = 0;
    if (options_.finished_s > 0) cutoff = now_us() - static_cast<int64_t>(options_.finished_s * 1e6);
    if (options_.max_jobs > 0) {
        try {
            // Finished before the oldest of the newest max_jobs: beyond them.
            if (const int64_t beyond = store_.finished_at_of_newest(options_.max_jobs); beyond != 0)
                cutoff = std::max(cutoff, beyond);
        } catch (const std::exception &e) {
            std::lock_guard lock(mu_);
            stats_.last_error = e.what();
            return;
        }
    }
    if (cutoff <= 0) return;
    const int64_t keys_live_since = now_us() - static_cast<int64_t>(options_.idempotency_ttl_s * 1e6);
    auto deleted = delete_finished(cutoff, std::nullopt, keys_live_since, stop);
    std::lock_guard lock(mu_);
    ++stats_.passes;
    stats_.last_error = deleted ? std::string() : deleted.error().message;
    if (!deleted) spdlog::warn("retention: {}", deleted.error().message);
    else if (deleted->jobs > 0)
        spdlog::info("retention: deleted {} finished job(s) and {} result artifact(s)", deleted->jobs,
                     deleted->artifacts);
}

void Retention::loop(std::stop_token stop) {
    name_this_thread("th-retention");
    while (!stop.stop_requested()) {
        pass(stop);
        std::unique_lock lock(wake_mu_);
        wake_.wait_for(lock, stop, std::chrono::duration<double>(interval_s()), [] { return false; });
    }
}

}  // namespace taskhost::jobs
