// A job as the API shows it and the store keeps it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost::model {

enum class JobStatus { pending, running, completed, failed, canceled };

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
    int attempts = 0;      // times its task was started (each committed before it ran)
    // Its task is retry-safe (TH_TASK_RETRY_SAFE): if its host is lost while
    // it runs, it is queued again, up to kMaxHostLossAttempts starts.
    bool retry_safe = false;
    // In a fleet (PostgreSQL; empty on SQLite and for jobs stored before):
    // the version of its task's plugin it was accepted for, the one that
    // ran it, and the host that ran it. It runs only where that plugin's
    // major version is the same.
    std::string plugin_version;
    std::string ran_version;
    std::string run_by;
};

// Starts of a retry-safe job that a lost host may cost before it fails.
inline constexpr int kMaxHostLossAttempts = 3;

// The major part of a plugin version: what comes before the first dot
// ("2.1.0" -> "2"). Jobs may run on any version with the same major.
inline std::string_view major_version(std::string_view version) { return version.substr(0, version.find('.')); }

}  // namespace taskhost::model
