// What one run of a task reported, and the result artifact the guide
// stores for it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost::model {

struct TaskOutcome {
    bool has_result = false;
    std::string result_json;  // valid JSON text when has_result
    bool has_error = false;
    std::string error_type, error_message, error_traceback;
    // The plugin said the error is final (TH_ERROR_FINAL): no retry.
    bool error_final = false;
    // Its worker process was killed because the job was given up on
    // (Executor::write_off): the job's end is the giver-up's to record.
    bool given_up = false;
    // The task's own run time in microseconds, where it was measured apart
    // from the hand-off to where it ran (in a worker process); otherwise the
    // caller's clock is all there is.
    std::optional<int64_t> code_us;
    // Asked to check the params first (exec::ParamsCheck::first), it found
    // them invalid and did not run the task: why.
    std::optional<std::string> params_refused;
};

// {"task_name", "params", "result", "error": {"type", "message", "traceback"}}
std::string result_artifact_data(std::string_view task_name, std::string_view params_json, const TaskOutcome &out);

}  // namespace taskhost::model
