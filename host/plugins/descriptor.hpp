// A plugin's descriptor, read once at load. It is checked (magic, ABI,
// names, tables), then copied into structs of the host's own layout,
// whatever struct sizes the plugin was built with: arrays are walked by
// the plugin's struct_size, members its ABI minor lacks read as zero/NULL,
// members the host does not know are dropped. Everything after loading
// (registry, task info, executors) reads only this copy, so no other code
// needs to know about struct sizes. Strings and functions still point into
// the plugin: the copy is valid while the library stays loaded. Its JSON
// Schemas are compiled here, once; one that is not JSON or not a JSON Schema
// refuses the plugin.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <taskhost/abi.h>

#include "schema/json_schema.hpp"
#include "util/result.hpp"

namespace taskhost::plugins {

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

private:
    friend Result<std::unique_ptr<const Descriptor>> read_descriptor(const th_plugin_desc *d);

    th_plugin_desc plugin_{};
    std::vector<th_task_desc> tasks_;
    std::vector<std::vector<th_param_desc>> params_;                         // by task
    std::vector<std::shared_ptr<const schema::JsonSchema>> params_schemas_;  // by task
};

// The host's copy of `d`, or ErrorKind::invalid with the reason the
// descriptor cannot be used.
Result<std::unique_ptr<const Descriptor>> read_descriptor(const th_plugin_desc *d);

}  // namespace taskhost::plugins
