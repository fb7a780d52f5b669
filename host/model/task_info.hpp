// TaskInfo: what the API says about a task (GET /api/v1/tasks), rendered
// from the plugin's C descriptor once, when the plugin is loaded.
#pragma once

#include <string>
#include <string_view>

#include <taskhost/abi.h>

#include "model/retry.hpp"

namespace taskhost::model {

// ^[a-zA-Z0-9_-]+$
bool is_valid_task_name(std::string_view name);

// name, docstring, signature, parameters, tags, parameters_schema,
// timeout_s, plugin {name, version}.
// The retry policy a task declares (max_attempts 1 when it declares none).
RetryPolicy task_retry_policy(const th_task_desc &desc);

std::string render_task_info(const th_task_desc &desc, std::string_view plugin_name, std::string_view plugin_version);

}  // namespace taskhost::model
