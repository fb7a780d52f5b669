// JSON Schema (draft-07) as the host applies it to plugins' declarations:
// a schema is checked and compiled once, when its plugin loads, and then
// checks any number of params objects, from any thread. valijson does the
// work; this keeps it out of every other header.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/result.hpp"

namespace taskhost::schema {

// Deepest nesting of arrays and objects a schema may have.
inline constexpr size_t max_schema_depth = 128;

class JsonSchema {
public:
    // The compiled schema, or ErrorKind::invalid saying why `text` is not
    // JSON, not a JSON Schema, or nested deeper than max_schema_depth.
    static Result<std::shared_ptr<const JsonSchema>> compile(std::string_view text);

    JsonSchema(const JsonSchema &) = delete;
    JsonSchema &operator=(const JsonSchema &) = delete;
    ~JsonSchema();

    // Nothing when `params` (a task's params object) satisfies the schema;
    // otherwise ErrorKind::invalid with one line naming the parameter, in
    // the SDK's words where it has them ("unknown parameter 'x'",
    // "parameter 'a': expected integer, got string").
    Result<void> check_params(const nlohmann::json &params) const;

private:
    struct Compiled;
    explicit JsonSchema(std::unique_ptr<Compiled> compiled);
    std::unique_ptr<Compiled> compiled_;
};

}  // namespace taskhost::schema
