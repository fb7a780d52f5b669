#include "plugins/descriptor.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "model/task_info.hpp"

namespace taskhost::plugins {

namespace {

Error refusal(std::string reason) { return fail(ErrorKind::invalid, std::move(reason)); }

// The elements of a plugin's array of `count` descriptors of type T, found
// by the stride the plugin declares (the first element's struct_size),
// which every element must repeat and which must hold T's ABI 1 minimum.
// `owner` prefixes the reasons ("" or "task 'x': "), `noun` names an element.
template <class T>
Result<std::vector<const T *>> elements_of(const T *array, uint32_t count, size_t min_size, const std::string &owner,
                                           const std::string &noun) {
    std::vector<const T *> out;
    if (count == 0) return out;
    if (reinterpret_cast<std::uintptr_t>(array) % alignof(T) != 0)
        return refusal(owner + "the " + noun + " table is not aligned");
    const size_t stride = array->struct_size;
    if (stride < min_size)
        return refusal(owner + noun + " #0 declares struct_size " + std::to_string(stride) + ", below the " +
                       std::to_string(min_size) + " bytes every ABI " + std::to_string(TH_ABI_MAJOR) + " " + noun +
                       " descriptor has");
    if (stride % alignof(T) != 0)
        return refusal(owner + noun + " #0 declares struct_size " + std::to_string(stride) + ", not a multiple of " +
                       std::to_string(alignof(T)) + " (not the size of a " + noun + " descriptor)");
    out.reserve(count);
    const auto *base = reinterpret_cast<const unsigned char *>(array);
    for (uint32_t i = 0; i < count; ++i) {
        const T *element = reinterpret_cast<const T *>(base + size_t{i} * stride);
        if (element->struct_size != stride)
            return refusal(owner + noun + " #" + std::to_string(i) + " declares struct_size " +
                           std::to_string(element->struct_size) + " but " + noun + " #0 declares " +
                           std::to_string(stride) + "; every " + noun + " of one table must have the same size");
        out.push_back(element);
    }
    return out;
}

// Copies of the plugin's structs in the host's layout: the minimum as is,
// optional members only when the plugin's struct_size covers them.
th_param_desc copy_param(const th_param_desc *p) {
    th_param_desc out{};
    out.struct_size = sizeof out;
    out.flags = p->flags;
    out.name = p->name;
    out.annotation = p->annotation;
    out.default_json = p->default_json;
    if (TH_DESC_HAS(p, th_param_desc, schema_json)) out.schema_json = p->schema_json;
    return out;
}

th_task_desc copy_task(const th_task_desc *t) {
    th_task_desc out{};
    out.struct_size = sizeof out;
    out.name = t->name;
    out.doc = t->doc;
    out.signature = t->signature;
    out.tags = t->tags;
    out.tag_count = t->tag_count;
    out.param_count = t->param_count;
    out.params = nullptr;  // set to the host's copies
    out.params_schema_json = t->params_schema_json;
    out.default_timeout_s = t->default_timeout_s;
    out.invoke = t->invoke;
    if (TH_DESC_HAS(t, th_task_desc, validate)) out.validate = t->validate;
    return out;
}

th_plugin_desc copy_plugin(const th_plugin_desc *d) {
    th_plugin_desc out{};
    out.magic = d->magic;
    out.abi_major = d->abi_major;
    out.abi_minor = d->abi_minor;
    out.struct_size = sizeof out;
    out.task_count = d->task_count;
    out.name = d->name;
    out.version = d->version;
    out.tasks = nullptr;  // set to the host's copies
    if (TH_DESC_HAS(d, th_plugin_desc, init)) out.init = d->init;
    if (TH_DESC_HAS(d, th_plugin_desc, shutdown)) out.shutdown = d->shutdown;
    if (TH_DESC_HAS(d, th_plugin_desc, build_info)) out.build_info = d->build_info;
    if (TH_DESC_HAS(d, th_plugin_desc, declaration_error)) out.declaration_error = d->declaration_error;
    return out;
}

}  // namespace

Result<std::unique_ptr<const Descriptor>> read_descriptor(const th_plugin_desc *d) {
    if (d == nullptr) return refusal("the entry symbol returned no descriptor");
    if (d->magic != TH_ABI_MAGIC) return refusal("bad descriptor magic: not a taskhost plugin descriptor");
    if (d->abi_major != TH_ABI_MAJOR)
        return refusal("ABI mismatch: plugin built for ABI " + std::to_string(d->abi_major) + "." +
                       std::to_string(d->abi_minor) + ", host supports ABI " + std::to_string(TH_ABI_MAJOR) + ".x");
    if (d->struct_size < TH_PLUGIN_DESC_MIN_SIZE)
        return refusal("descriptor too small (" + std::to_string(d->struct_size) + " bytes, ABI " +
                       std::to_string(TH_ABI_MAJOR) + " has at least " + std::to_string(TH_PLUGIN_DESC_MIN_SIZE) + ")");
    auto out = std::make_unique<Descriptor>();
    out->plugin_ = copy_plugin(d);
    const th_plugin_desc &plugin = out->plugin_;
    if (plugin.name == nullptr || *plugin.name == '\0') return refusal("the plugin has no name");
    // The plugin knows its declaration is wrong (SDK 1.1 and later): nothing in it runs.
    if (plugin.declaration_error != nullptr)
        return refusal(std::string("invalid declaration: ") + plugin.declaration_error);
    if (plugin.task_count > 0 && d->tasks == nullptr) return refusal("the plugin declares tasks but no task table");

    Result<std::vector<const th_task_desc *>> tasks =
        elements_of(d->tasks, plugin.task_count, TH_TASK_DESC_MIN_SIZE, "", "task");
    if (!tasks) return std::move(tasks).error();
    std::set<std::string_view> seen;
    for (const th_task_desc *theirs : *tasks) {
        th_task_desc t = copy_task(theirs);
        std::string_view name = t.name ? t.name : "";
        if (!model::is_valid_task_name(name))
            return refusal("invalid task name '" + std::string(name) + "' (must match ^[a-zA-Z0-9_-]+$)");
        if (!seen.insert(name).second) return refusal("duplicate task name '" + std::string(name) + "' in the plugin");
        const std::string owner = "task '" + std::string(name) + "': ";
        if (t.invoke == nullptr) return refusal(owner + "no invoke function");
        if (t.param_count > 0 && theirs->params == nullptr) return refusal(owner + "no parameter table");
        Result<std::vector<const th_param_desc *>> params =
            elements_of(theirs->params, t.param_count, TH_PARAM_DESC_MIN_SIZE, owner, "parameter");
        if (!params) return std::move(params).error();
        std::vector<th_param_desc> copies;
        copies.reserve(params->size());
        for (const th_param_desc *p : *params) {
            copies.push_back(copy_param(p));
            const th_param_desc &param = copies.back();
            if (param.schema_json == nullptr) continue;
            if (auto compiled = schema::JsonSchema::compile(param.schema_json); !compiled)
                return refusal("invalid declaration: " + owner + "parameter '" + (param.name ? param.name : "") +
                               "': schema_json is " + compiled.error().message);
        }
        std::shared_ptr<const schema::JsonSchema> params_schema;
        if (t.params_schema_json != nullptr) {
            auto compiled = schema::JsonSchema::compile(t.params_schema_json);
            if (!compiled)
                return refusal("invalid declaration: " + owner + "params_schema_json is " + compiled.error().message);
            params_schema = std::move(*compiled);
        }
        out->tasks_.push_back(t);
        out->params_.push_back(std::move(copies));
        out->params_schemas_.push_back(std::move(params_schema));
    }
    // Linked last: the vectors no longer move.
    for (size_t i = 0; i < out->tasks_.size(); ++i)
        out->tasks_[i].params = out->params_[i].empty() ? nullptr : out->params_[i].data();
    out->plugin_.tasks = out->tasks_.empty() ? nullptr : out->tasks_.data();
    return std::unique_ptr<const Descriptor>(std::move(out));
}

}  // namespace taskhost::plugins
