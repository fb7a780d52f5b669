// An artifact (a stored JSON value in a hierarchy), and what a caller sends
// to create or change one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace taskhost::model {

struct Artifact {
    std::string id;
    std::optional<std::string> parent_id;
    int level = 0;
    std::string data_json;         // any JSON value, as text
    std::string tags_json = "[]";  // JSON array of strings
    int64_t created_at = 0;
    int64_t updated_at = 0;
};

struct ArtifactInput {
    std::optional<std::string> id;         // set: upsert that id
    std::optional<std::string> data_json;  // required on create; on update only applied when set
    std::optional<std::string> parent_id;  // only applied when set (cannot be cleared)
    std::optional<std::string> tags_json;  // only applied when set
};

}  // namespace taskhost::model
