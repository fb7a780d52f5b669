#include "plugins/descriptor.hpp"

#include <cstddef>
#include <set>
#include <string_view>

#include "model/task_info.hpp"

namespace taskhost::plugins {

namespace {

Error refusal(std::string reason) { return fail(ErrorKind::invalid, std::move(reason)); }

}  // namespace

Result<void> check_descriptor(const th_plugin_desc *d) {
    if (d == nullptr) return refusal("the entry symbol returned no descriptor");
    if (d->magic != TH_ABI_MAGIC) return refusal("bad descriptor magic: not a taskhost plugin descriptor");
    if (d->abi_major != TH_ABI_MAJOR)
        return refusal("ABI mismatch: plugin built for ABI " + std::to_string(d->abi_major) + "." +
                       std::to_string(d->abi_minor) + ", host supports ABI " + std::to_string(TH_ABI_MAJOR) + ".x");
    if (d->struct_size < offsetof(th_plugin_desc, init))
        return refusal("descriptor too small (" + std::to_string(d->struct_size) + " bytes)");
    if (d->name == nullptr || *d->name == '\0') return refusal("the plugin has no name");
    if (d->task_count > 0 && d->tasks == nullptr) return refusal("the plugin declares tasks but no task table");
    std::set<std::string_view> seen;
    for (uint32_t i = 0; i < d->task_count; ++i) {
        const th_task_desc &t = d->tasks[i];
        if (t.struct_size < offsetof(th_task_desc, validate))
            return refusal("task #" + std::to_string(i) + ": descriptor too small");
        std::string_view name = t.name ? t.name : "";
        if (!model::is_valid_task_name(name))
            return refusal("invalid task name '" + std::string(name) + "' (must match ^[a-zA-Z0-9_-]+$)");
        if (!seen.insert(name).second) return refusal("duplicate task name '" + std::string(name) + "' in the plugin");
        if (t.invoke == nullptr) return refusal("task '" + std::string(name) + "' has no invoke function");
        if (t.param_count > 0 && t.params == nullptr)
            return refusal("task '" + std::string(name) + "' has no parameter table");
    }
    return {};
}

}  // namespace taskhost::plugins
