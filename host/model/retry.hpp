// Retries: a task's policy (declared in the SDK, overridable per submit),
// how long a failed attempt waits before the next, and the record of the
// attempts that failed before the one a job shows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace taskhost::model {

enum class Backoff { fixed, exponential };

struct RetryPolicy {
    int max_attempts = 1;  // attempts in all; 1: a failure is final
    Backoff backoff = Backoff::exponential;
    double delay_s = 1;         // before the second attempt (fixed: before each)
    double max_delay_s = 3600;  // exponential: the longest wait
    bool jitter = true;         // each wait × a random factor in [0.8, 1.2], then capped
    bool operator==(const RetryPolicy &) const = default;
};
inline constexpr int kMaxAttempts = 100;
inline constexpr double kMaxRetryDelayS = 7 * 86400.0;
inline constexpr double kRetryJitter = 0.2;

// The wait after attempt `failed` (1 = the first) failed, in µs. `unit` is
// a random number in [0, 1) (the jitter's; ignored without it).
int64_t retry_delay_us(const RetryPolicy &p, int failed, double unit);

// {"max_attempts", "backoff", "delay_s", "max_delay_s", "jitter"}
std::string render_retry(const RetryPolicy &p);
// A stored policy (render_retry's text); `base` when absent or unreadable.
RetryPolicy parse_stored_retry(std::string_view text, const RetryPolicy &base = {});
// A submit's "retry" object over the task's policy: members given replace
// the task's. Why not, naming the member, when it is wrong.
std::optional<std::string> apply_retry_json(const nlohmann::json &given, RetryPolicy &policy);

// An attempt that failed and was retried (or lost with its host), as the
// job's attempt log keeps it: times in µs, its error cut to kMaxAttemptError
// bytes (at a character boundary).
struct FailedAttempt {
    int attempt = 0;
    int64_t started_at = 0, finished_at = 0;
    std::string error;
    std::string run_by;  // a fleet's host; empty on one host
};
inline constexpr size_t kMaxAttemptError = 4096;
// The log (a JSON array, "" for none) with `a` appended.
std::string append_attempt(std::string_view log, const FailedAttempt &a);
// The log as the API shows it: [{"attempt", "started_at", "finished_at",
// "error", "run_by"}] with RFC 3339 times; "[]" for none.
void render_attempt_log(std::string &out, std::string_view log);

}  // namespace taskhost::model
