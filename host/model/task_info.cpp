#include "model/task_info.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace taskhost::model {

using nlohmann::json;

bool is_valid_task_name(std::string_view name) {
    if (name.empty()) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

namespace {

// Parses descriptor JSON text; a malformed schema from a plugin is shown as
// null rather than breaking the listing.
json parse_or_null(const char *text) {
    if (text == nullptr) return nullptr;
    json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
    return parsed.is_discarded() ? json(nullptr) : parsed;
}

// The original service shows defaults with Python's str(): strings bare,
// everything else as written.
json default_as_text(const char *default_json) {
    if (default_json == nullptr) return nullptr;
    json value = parse_or_null(default_json);
    if (value.is_string()) return value;
    return value.is_null() && std::string_view(default_json) != "null" ? json(default_json) : json(value.dump());
}

}  // namespace

RetryPolicy task_retry_policy(const th_task_desc &desc) {
    RetryPolicy p;
    if (desc.retry_max_attempts <= 1) return p;
    p.max_attempts = static_cast<int>(desc.retry_max_attempts);
    p.backoff = desc.retry_flags & TH_RETRY_EXPONENTIAL ? Backoff::exponential : Backoff::fixed;
    p.jitter = (desc.retry_flags & TH_RETRY_JITTER) != 0;
    p.delay_s = desc.retry_delay_s;
    p.max_delay_s = std::max(desc.retry_max_delay_s, desc.retry_delay_s);
    return p;
}

std::string render_task_info(const th_task_desc &desc, std::string_view plugin_name, std::string_view plugin_version) {
    json params = json::array();
    for (uint32_t i = 0; i < desc.param_count; ++i) {
        const th_param_desc &p = desc.params[i];
        params.push_back({
            {"name", p.name ? p.name : ""},
            {"annotation", p.annotation ? json(p.annotation) : json(nullptr)},
            {"default", default_as_text(p.default_json)},
            {"required", (p.flags & TH_PARAM_REQUIRED) != 0},
            {"injected", (p.flags & TH_PARAM_INJECTED) != 0},
        });
    }
    json tags = json::array();
    for (uint32_t i = 0; i < desc.tag_count; ++i) tags.push_back(desc.tags[i] ? desc.tags[i] : "");
    json info = {
        {"name", desc.name},
        {"docstring", desc.doc ? json(desc.doc) : json(nullptr)},
        {"signature", desc.signature ? desc.signature : ""},
        {"parameters", std::move(params)},
        {"tags", std::move(tags)},
        {"parameters_schema", parse_or_null(desc.params_schema_json)},
        {"timeout_s", desc.default_timeout_s > 0 ? json(desc.default_timeout_s) : json(nullptr)},
        {"retry_safe", (desc.flags & TH_TASK_RETRY_SAFE) != 0},
        {"priority", desc.priority},
        {"retry",
         task_retry_policy(desc).max_attempts > 1 ? json::parse(render_retry(task_retry_policy(desc))) : json(nullptr)},
        // The schedule its plugin declares (.every()), if any.
        {"every", desc.every_cron
                      ? json{{"cron", desc.every_cron}, {"tz", desc.every_tz && *desc.every_tz ? desc.every_tz : "UTC"}}
                      : json(nullptr)},
        {"plugin", {{"name", plugin_name}, {"version", plugin_version}}},
    };
    return info.dump();
}

}  // namespace taskhost::model
