// A plugin's descriptor, read once at load. It is checked (magic, ABI,
// names, tables), then copied into structs of the host's own layout,
// whatever struct sizes the plugin was built with: arrays are walked by
// the plugin's struct_size, members its ABI minor lacks read as zero/NULL,
// members the host does not know are dropped. Everything after loading
// (registry, task info, executors) reads only this copy, so no other code
// needs to know about struct sizes. Its JSON Schemas are compiled here,
// once; one that is not JSON or not a JSON Schema refuses the plugin.
//
// Two sources, one set of checks:
//  - read_descriptor(): the plugin is loaded in this process. Strings and
//    functions point into the plugin: the copy is valid while the library
//    stays loaded.
//  - descriptor_from_json(): the plugin was loaded in another process (the
//    probe child), which reported its descriptor as descriptor_to_json()
//    text. This "remote" descriptor owns its strings and has no function
//    pointers (invoke, validate, init, shutdown are NULL); has_validate(),
//    has_init() and has_shutdown() say which the plugin has. Its text is
//    untrusted (plugin code ran in that process): anything malformed is a
//    refusal.
// Both then go through the same checker (names, duplicates, text, schemas),
// so an accepted descriptor reads the same whichever way it came.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <taskhost/abi.h>

#include "schema/json_schema.hpp"
#include "util/result.hpp"

namespace taskhost::plugins {

// Largest descriptor_to_json() text accepted from a probe child.
inline constexpr size_t max_descriptor_json_bytes = size_t{4} << 20;
// Most tasks a plugin, and parameters or tags a task, may declare: beyond,
// the plugin is refused before its tables are read.
inline constexpr uint32_t max_tasks_per_plugin = 10000;
inline constexpr uint32_t max_params_per_task = 1000;
inline constexpr uint32_t max_tags_per_task = 1000;

class Descriptor {
public:
    Descriptor() = default;
    Descriptor(const Descriptor &) = delete;
    Descriptor &operator=(const Descriptor &) = delete;

    // struct_size is the host's sizeof; tasks points at host-owned tasks,
    // and each task's params at host-owned params.
    const th_plugin_desc &plugin() const noexcept { return plugin_; }
    // Task i's params_schema_json, compiled; null when it declares none.
    const schema::JsonSchema *params_schema(size_t i) const noexcept { return params_schemas_[i].get(); }
    // Which optional functions the plugin has: read from its pointers, or
    // for a remote descriptor (whose pointers are all NULL) as reported.
    bool has_init() const noexcept { return has_init_; }
    bool has_shutdown() const noexcept { return has_shutdown_; }
    bool has_validate(size_t task) const noexcept { return has_validate_[task]; }
    // Built by descriptor_from_json(): owns its text, has no functions.
    bool is_remote() const noexcept { return remote_; }

private:
    friend struct DescriptorBuilder;

    th_plugin_desc plugin_{};
    std::vector<th_task_desc> tasks_;
    std::vector<std::vector<th_param_desc>> params_;                         // by task
    std::vector<std::shared_ptr<const schema::JsonSchema>> params_schemas_;  // by task
    std::vector<bool> has_validate_;                                         // by task
    bool has_init_ = false;
    bool has_shutdown_ = false;
    bool remote_ = false;
    // A remote descriptor's strings and tag tables, which its structs point
    // into (a deque: adding one never moves the others).
    std::deque<std::string> text_;
    std::vector<std::vector<const char *>> tags_;  // by task
};

// The host's copy of `d`, or ErrorKind::invalid with the reason the
// descriptor cannot be used.
Result<std::unique_ptr<const Descriptor>> read_descriptor(const th_plugin_desc *d);

// `d` as one line of compact JSON (no raw newline): what the probe child
// reports. Every string a nullable JSON string, function pointers as
// has_init / has_shutdown / has_validate.
std::string descriptor_to_json(const Descriptor &d);

// A remote descriptor from descriptor_to_json() text, or ErrorKind::invalid
// with one reason: the text is not such JSON (too large, not JSON, a
// member missing or of the wrong type, too many elements), or what it
// describes fails read_descriptor()'s checks. Never throws.
Result<std::unique_ptr<const Descriptor>> descriptor_from_json(std::string_view text);

}  // namespace taskhost::plugins
