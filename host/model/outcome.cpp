#include "model/outcome.hpp"

#include "util/json_text.hpp"

namespace taskhost::model {

std::string result_artifact_data(std::string_view task_name, std::string_view params_json, const TaskOutcome &out) {
    std::string data;
    data.reserve(64 + task_name.size() + params_json.size() + out.result_json.size());
    {  // closed before the return: the writer adds the closing brace when it goes
        json_text::Object o(data);
        o.str("task_name", task_name);
        o.raw("params", params_json);
        o.raw("result", out.has_result && !out.has_error ? std::string_view(out.result_json) : "null");
        if (out.has_error) {
            json_text::Object e(o.key("error"));
            e.str("type", out.error_type);
            e.str("message", out.error_message);
            e.str("traceback", out.error_traceback);
        } else {
            o.null("error");
        }
    }
    return data;
}

}  // namespace taskhost::model
