// A job as the API shows it and the store keeps it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "model/retry.hpp"

namespace taskhost::model {

// scheduled: waiting for its run_at; then pending (waiting for a worker).
enum class JobStatus { pending, running, completed, failed, canceled, scheduled };

std::string_view to_string(JobStatus status);
std::optional<JobStatus> parse_job_status(std::string_view text);
inline bool is_terminal(JobStatus s) {
    return s == JobStatus::completed || s == JobStatus::failed || s == JobStatus::canceled;
}

// Times are microseconds since the Unix epoch, UTC; 0 means "not yet" (null).
struct Job {
    std::string id;
    std::string task_name;
    std::string params_json = "{}";  // exactly what the caller sent
    JobStatus status = JobStatus::pending;
    int64_t submitted_at = 0;
    int64_t started_at = 0;
    int64_t finished_at = 0;
    std::optional<std::string> error;
    std::optional<std::string> error_traceback;
    std::optional<std::string> artifact_id;
    double progress = -1;  // 0..1, or -1 when the task never reported any
    std::string progress_message;
    double timeout_s = 0;  // 0 = none
    // -10..10, higher first (see queue_rank); when it is to run (0: now).
    int priority = 0;
    int64_t run_at = 0;
    // The submit's Idempotency-Key (empty: none) and the SHA-256 of what it
    // asked (task and body): a second submit with the key gets this job.
    std::string idempotency_key;
    std::string request_hash;
    int attempts = 0;      // times its task was started (each committed before it ran)
    // When an attempt fails, whether and when it runs again (max_attempts 1:
    // never), and the attempts that failed before this one (a JSON array,
    // "" for none: model/retry.hpp). A job waiting for its next attempt is
    // `scheduled`, its run_at the time of that attempt.
    RetryPolicy retry;
    std::string attempt_log;
    // Its task is retry-safe (TH_TASK_RETRY_SAFE): if its host is lost while
    // it runs, or its worker process crashes, it is queued again, up to its
    // max_attempts starts (kMaxHostLossAttempts if that is 1).
    bool retry_safe = false;
    // The schedule that made it (model/schedule.hpp; empty: none).
    std::string schedule_id;
    // In a fleet (PostgreSQL; empty on SQLite and for jobs stored before):
    // the version of its task's plugin it was accepted for, the one that
    // ran it, and the host that ran it. It runs only where that plugin's
    // major version is the same.
    std::string plugin_version;
    std::string ran_version;
    std::string run_by;
};

// Priorities: each level counts as this much waiting. A job of priority p
// queues as if it had been submitted p × 10 s earlier, so a higher one runs
// first, equal ones in submit order, and a low one is passed only by jobs
// submitted less than (difference × 10 s) after it: never starved.
inline constexpr int kMinPriority = -10, kMaxPriority = 10;
inline constexpr int64_t kPriorityStepUs = 10'000'000;
// Its place in a queue: smaller runs first.
inline int64_t queue_rank(const Job &j) {
    return (j.run_at > j.submitted_at ? j.run_at : j.submitted_at) - int64_t{j.priority} * kPriorityStepUs;
}

// Starts of a retry-safe job without a retry policy that a lost host may
// cost before it fails.
inline constexpr int kMaxHostLossAttempts = 3;

// The major part of a plugin version: what comes before the first dot
// ("2.1.0" -> "2"). Jobs may run on any version with the same major.
inline std::string_view major_version(std::string_view version) { return version.substr(0, version.find('.')); }

}  // namespace taskhost::model
