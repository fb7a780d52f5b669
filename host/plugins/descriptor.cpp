#include "plugins/descriptor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "model/cron.hpp"
#include "model/retry.hpp"
#include "model/task_info.hpp"
#include "util/json_text.hpp"

namespace taskhost::plugins {

using nlohmann::json;

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

// A task's retry policy, within the host's limits (model/retry.hpp).
void set_retry(th_task_desc &out, uint64_t max_attempts, uint64_t flags, double delay_s, double max_delay_s) {
    const auto seconds = [](double s) { return std::isfinite(s) ? std::clamp(s, 0.0, model::kMaxRetryDelayS) : 0.0; };
    out.retry_max_attempts = static_cast<uint32_t>(std::min<uint64_t>(max_attempts, model::kMaxAttempts));
    out.retry_flags = static_cast<uint32_t>(flags) & (TH_RETRY_EXPONENTIAL | TH_RETRY_JITTER);
    out.retry_delay_s = seconds(delay_s);
    out.retry_max_delay_s = seconds(max_delay_s);
}

th_task_desc copy_task(const th_task_desc *t, uint16_t abi_minor) {
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
    if (TH_DESC_HAS(t, th_task_desc, flags)) out.flags = t->flags & TH_TASK_RETRY_SAFE;  // the flags this host knows
    // Reserved before 1.3, where the SDK zeroed it but nothing said it must be.
    if (abi_minor >= 3 && TH_DESC_HAS(t, th_task_desc, priority)) out.priority = std::clamp(t->priority, -10, 10);
    if (abi_minor >= 4 && TH_DESC_HAS(t, th_task_desc, retry_max_delay_s))
        set_retry(out, t->retry_max_attempts, t->retry_flags, t->retry_delay_s, t->retry_max_delay_s);
    if (abi_minor >= 5 && TH_DESC_HAS(t, th_task_desc, every_tz)) {
        out.every_cron = t->every_cron;
        out.every_tz = t->every_cron ? t->every_tz : nullptr;
    }
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

// ---- checks both sources share ------------------------------------------

std::optional<Error> check_abi(uint32_t magic, uint32_t major, uint32_t minor) {
    if (magic != TH_ABI_MAGIC) return refusal("bad descriptor magic: not a taskhost plugin descriptor");
    if (major != TH_ABI_MAJOR)
        return refusal("ABI mismatch: plugin built for ABI " + std::to_string(major) + "." + std::to_string(minor) +
                       ", host supports ABI " + std::to_string(TH_ABI_MAJOR) + ".x");
    return std::nullopt;
}

// The plugin's own members, checked before its task table is read.
std::optional<Error> check_plugin(const th_plugin_desc &plugin) {
    if (plugin.name == nullptr || *plugin.name == '\0') return refusal("the plugin has no name");
    // The plugin knows its declaration is wrong (SDK 1.1 and later): nothing in it runs.
    if (plugin.declaration_error != nullptr) {
        if (!json_text::is_valid_utf8(plugin.declaration_error))
            return refusal("invalid declaration (the plugin's message says so in text that is not UTF-8)");
        return refusal(std::string("invalid declaration: ") + plugin.declaration_error);
    }
    if (plugin.task_count > max_tasks_per_plugin)
        return refusal("the plugin declares " + std::to_string(plugin.task_count) + " tasks; at most " +
                       std::to_string(max_tasks_per_plugin) + " are allowed");
    return std::nullopt;
}

// A task's counts, checked before its tables are read. `index` names it
// (its name is not checked yet).
std::optional<Error> check_counts(const th_task_desc &task, size_t index) {
    const std::string owner = "task #" + std::to_string(index) + ": ";
    if (task.param_count > max_params_per_task)
        return refusal(owner + "declares " + std::to_string(task.param_count) + " parameters; at most " +
                       std::to_string(max_params_per_task) + " are allowed");
    if (task.tag_count > max_tags_per_task)
        return refusal(owner + "declares " + std::to_string(task.tag_count) + " tags; at most " +
                       std::to_string(max_tags_per_task) + " are allowed");
    return std::nullopt;
}

// The first string the API would have to show that is not UTF-8 (JSON
// cannot carry it), named.
std::optional<Error> check_text(const th_plugin_desc &plugin, const std::vector<std::vector<th_param_desc>> &params) {
    auto bad = [](const char *text) { return text != nullptr && !json_text::is_valid_utf8(text); };
    auto not_utf8 = [](const std::string &what) { return refusal(what + " is not valid UTF-8 text"); };
    if (bad(plugin.name)) return not_utf8("the plugin's name");
    if (bad(plugin.version)) return not_utf8("the plugin's version");
    if (bad(plugin.build_info)) return not_utf8("the plugin's build_info");
    for (uint32_t i = 0; i < plugin.task_count; ++i) {
        const th_task_desc &t = plugin.tasks[i];
        if (bad(t.name)) return not_utf8("the name of task #" + std::to_string(i));
        const std::string owner = "task '" + std::string(t.name ? t.name : "") + "': ";
        if (bad(t.doc)) return not_utf8(owner + "doc");
        if (bad(t.signature)) return not_utf8(owner + "signature");
        if (bad(t.params_schema_json)) return not_utf8(owner + "params_schema_json");
        if (bad(t.every_cron)) return not_utf8(owner + "every_cron");
        if (bad(t.every_tz)) return not_utf8(owner + "every_tz");
        for (uint32_t k = 0; k < t.tag_count; ++k)
            if (bad(t.tags[k])) return not_utf8(owner + "tag #" + std::to_string(k));
        for (size_t k = 0; k < params[i].size(); ++k) {
            const th_param_desc &p = params[i][k];
            const std::string param = owner + "parameter #" + std::to_string(k) + " ";
            if (bad(p.name)) return not_utf8(param + "name");
            if (bad(p.annotation)) return not_utf8(param + "annotation");
            if (bad(p.default_json)) return not_utf8(param + "default_json");
            if (bad(p.schema_json)) return not_utf8(param + "schema_json");
        }
    }
    return std::nullopt;
}

}  // namespace

// Fills a Descriptor from either source, then checks and seals it.
struct DescriptorBuilder {
    // The checks after the tables have been copied into `out` (tasks_,
    // params_; for a remote one also text_ and tags_), whichever source:
    // names, duplicates, text, schemas. `functions`: the structs carry the
    // plugin's function pointers (read in this process), so each task must
    // have invoke and the has_* answers are read from them.
    static Result<std::unique_ptr<const Descriptor>> finish(std::unique_ptr<Descriptor> out, bool functions) {
        th_plugin_desc &plugin = out->plugin_;
        if (auto e = check_abi(plugin.magic, plugin.abi_major, plugin.abi_minor)) return std::move(*e);
        if (auto e = check_plugin(plugin)) return std::move(*e);
        for (size_t i = 0; i < out->tasks_.size(); ++i)
            if (auto e = check_counts(out->tasks_[i], i)) return std::move(*e);
        link(*out);
        if (auto e = check_text(plugin, out->params_)) return std::move(*e);

        std::set<std::string_view> seen;
        for (size_t i = 0; i < out->tasks_.size(); ++i) {
            const th_task_desc &t = out->tasks_[i];
            std::string_view name = t.name ? t.name : "";
            if (!model::is_valid_task_name(name))
                return refusal("invalid task name '" + std::string(name) + "' (must match ^[a-zA-Z0-9_-]+$)");
            if (!seen.insert(name).second)
                return refusal("duplicate task name '" + std::string(name) + "' in the plugin");
            const std::string owner = "task '" + std::string(name) + "': ";
            if (functions && t.invoke == nullptr) return refusal(owner + "no invoke function");
            for (const th_param_desc &param : out->params_[i]) {
                if (param.schema_json == nullptr) continue;
                if (auto compiled = schema::JsonSchema::compile(param.schema_json); !compiled)
                    return refusal("invalid declaration: " + owner + "parameter '" + (param.name ? param.name : "") +
                                   "': schema_json is " + compiled.error().message);
            }
            std::shared_ptr<const schema::JsonSchema> params_schema;
            if (t.params_schema_json != nullptr) {
                auto compiled = schema::JsonSchema::compile(t.params_schema_json);
                if (!compiled)
                    return refusal("invalid declaration: " + owner + "params_schema_json is " +
                                   compiled.error().message);
                params_schema = std::move(*compiled);
            }
            out->params_schemas_.push_back(std::move(params_schema));
            if (t.every_cron != nullptr) {
                if (auto cron = model::CronSchedule::parse(t.every_cron, t.every_tz ? t.every_tz : "UTC"); !cron)
                    return refusal("invalid declaration: " + owner + "every: " + cron.error().message);
                // Its schedule's runs send params {} (the SDK says so at
                // build time; a plugin in C learns it here).
                for (const th_param_desc &param : out->params_[i])
                    if (param.flags & TH_PARAM_REQUIRED)
                        return refusal("invalid declaration: " + owner + "every: its runs send params {}, but " +
                                       "parameter '" + (param.name ? param.name : "") + "' is required");
            }
        }
        if (functions) {
            out->has_init_ = plugin.init != nullptr;
            out->has_shutdown_ = plugin.shutdown != nullptr;
            out->has_validate_.clear();
            for (const th_task_desc &t : out->tasks_) out->has_validate_.push_back(t.validate != nullptr);
        }
        return std::unique_ptr<const Descriptor>(std::move(out));
    }

    // Points the structs at the host's copies (the vectors no longer move).
    static void link(Descriptor &d) {
        for (size_t i = 0; i < d.tasks_.size(); ++i) {
            d.tasks_[i].params = d.params_[i].empty() ? nullptr : d.params_[i].data();
            if (d.remote_) d.tasks_[i].tags = d.tags_[i].empty() ? nullptr : d.tags_[i].data();
        }
        d.plugin_.tasks = d.tasks_.empty() ? nullptr : d.tasks_.data();
        d.plugin_.task_count = static_cast<uint32_t>(d.tasks_.size());
    }

    static Result<std::unique_ptr<const Descriptor>> read(const th_plugin_desc *d) {
        if (d == nullptr) return refusal("the entry symbol returned no descriptor");
        if (auto e = check_abi(d->magic, d->abi_major, d->abi_minor)) return std::move(*e);
        if (d->struct_size < TH_PLUGIN_DESC_MIN_SIZE)
            return refusal("descriptor too small (" + std::to_string(d->struct_size) + " bytes, ABI " +
                           std::to_string(TH_ABI_MAJOR) + " has at least " + std::to_string(TH_PLUGIN_DESC_MIN_SIZE) +
                           ")");
        auto out = std::make_unique<Descriptor>();
        out->plugin_ = copy_plugin(d);
        if (auto e = check_plugin(out->plugin_)) return std::move(*e);
        if (out->plugin_.task_count > 0 && d->tasks == nullptr)
            return refusal("the plugin declares tasks but no task table");

        Result<std::vector<const th_task_desc *>> tasks =
            elements_of(d->tasks, out->plugin_.task_count, TH_TASK_DESC_MIN_SIZE, "", "task");
        if (!tasks) return std::move(tasks).error();
        for (const th_task_desc *theirs : *tasks) {
            th_task_desc t = copy_task(theirs, out->plugin_.abi_minor);
            if (auto e = check_counts(t, out->tasks_.size())) return std::move(*e);
            const std::string owner = "task '" + std::string(t.name ? t.name : "") + "': ";
            if (t.tag_count > 0 && t.tags == nullptr) return refusal(owner + "declares tags but no tag table");
            if (t.param_count > 0 && theirs->params == nullptr) return refusal(owner + "no parameter table");
            Result<std::vector<const th_param_desc *>> params =
                elements_of(theirs->params, t.param_count, TH_PARAM_DESC_MIN_SIZE, owner, "parameter");
            if (!params) return std::move(params).error();
            std::vector<th_param_desc> copies;
            copies.reserve(params->size());
            for (const th_param_desc *p : *params) copies.push_back(copy_param(p));
            out->tasks_.push_back(t);
            out->params_.push_back(std::move(copies));
        }
        return finish(std::move(out), true);
    }

    // ---- the remote descriptor ----------------------------------------------

    // Reads descriptor_to_json() text into `out`; the first problem, said
    // once, ends it. Members are looked up by name; unknown ones are ignored.
    class JsonReader {
    public:
        explicit JsonReader(Descriptor &out) : out_(out) {}
        const std::string &problem() const { return problem_; }

        bool read(const json &doc) {
            if (!doc.is_object()) return wrong("the descriptor", "an object");
            th_plugin_desc &p = out_.plugin_;
            p.magic = TH_ABI_MAGIC;  // it came from a descriptor the child read, which had it
            p.struct_size = sizeof p;
            uint64_t major = 0, minor = 0;
            const std::string top = "the descriptor";
            if (!unsigned_member(doc, "abi_major", top, std::numeric_limits<uint16_t>::max(), major) ||
                !unsigned_member(doc, "abi_minor", top, std::numeric_limits<uint16_t>::max(), minor) ||
                !text_member(doc, "name", top, p.name) || !text_member(doc, "version", top, p.version) ||
                !text_member(doc, "build_info", top, p.build_info) ||
                !text_member(doc, "declaration_error", top, p.declaration_error) ||
                !bool_member(doc, "has_init", top, out_.has_init_) ||
                !bool_member(doc, "has_shutdown", top, out_.has_shutdown_))
                return false;
            p.abi_major = static_cast<uint16_t>(major);
            p.abi_minor = static_cast<uint16_t>(minor);
            const json *tasks = member(doc, "tasks", top);
            if (tasks == nullptr) return false;
            if (!tasks->is_array()) return wrong(top + "'s \"tasks\"", "an array");
            if (tasks->size() > max_tasks_per_plugin)
                return say("the plugin declares " + std::to_string(tasks->size()) + " tasks; at most " +
                           std::to_string(max_tasks_per_plugin) + " are allowed");
            p.task_count = static_cast<uint32_t>(tasks->size());
            for (const json &task : *tasks)
                if (!read_task(task)) return false;
            return true;
        }

    private:
        bool read_task(const json &task) {
            const std::string where = "task #" + std::to_string(out_.tasks_.size());
            if (!task.is_object()) return wrong(where, "an object");
            th_task_desc t{};
            t.struct_size = sizeof t;
            bool validate = false;
            if (!text_member(task, "name", where, t.name) || !text_member(task, "doc", where, t.doc) ||
                !text_member(task, "signature", where, t.signature) ||
                !text_member(task, "params_schema_json", where, t.params_schema_json) ||
                !bool_member(task, "has_validate", where, validate))
                return false;
            uint64_t flags = 0;
            if (task.contains("flags") && !unsigned_member(task, "flags", where, TH_TASK_RETRY_SAFE, flags))
                return false;
            t.flags = static_cast<uint32_t>(flags);
            if (auto priority = task.find("priority"); priority != task.end()) {
                if (!priority->is_number_integer()) return wrong(where + "'s \"priority\"", "an integer");
                t.priority = static_cast<int32_t>(std::clamp<int64_t>(priority->get<int64_t>(), -10, 10));
            }
            if (auto retry = task.find("retry"); retry != task.end()) {
                uint64_t attempts = 0, retry_flags = 0;
                if (!retry->is_object() ||
                    !unsigned_member(*retry, "max_attempts", where, model::kMaxAttempts, attempts) ||
                    !unsigned_member(*retry, "flags", where, TH_RETRY_EXPONENTIAL | TH_RETRY_JITTER, retry_flags) ||
                    !retry->value("delay_s", json()).is_number() || !retry->value("max_delay_s", json()).is_number())
                    return wrong(where + "'s \"retry\"", "an object of max_attempts, flags, delay_s and max_delay_s");
                set_retry(t, attempts, retry_flags, (*retry)["delay_s"].get<double>(),
                          (*retry)["max_delay_s"].get<double>());
            }
            if (auto every = task.find("every"); every != task.end() && !every->is_null()) {
                if (!every->is_object() || !text_member(*every, "cron", where + "'s \"every\"", t.every_cron) ||
                    !text_member(*every, "tz", where + "'s \"every\"", t.every_tz))
                    return false;
                if (t.every_cron == nullptr) return wrong(where + "'s \"every\"", "an object with a cron text");
            }
            const json *timeout = member(task, "default_timeout_s", where);
            if (timeout == nullptr) return false;
            // Not finite: written as null (JSON has no such number); either way no timeout.
            if (timeout->is_number()) t.default_timeout_s = timeout->get<double>();
            else if (!timeout->is_null()) return wrong(where + "'s \"default_timeout_s\"", "a number or null");
            const json *tags = member(task, "tags", where);
            const json *params = member(task, "params", where);
            if (tags == nullptr || params == nullptr) return false;
            if (!tags->is_array()) return wrong(where + "'s \"tags\"", "an array");
            if (!params->is_array()) return wrong(where + "'s \"params\"", "an array");
            // Counts first, as the in-process reading checks them before its tables.
            t.tag_count = static_cast<uint32_t>(std::min<size_t>(tags->size(), UINT32_MAX));
            t.param_count = static_cast<uint32_t>(std::min<size_t>(params->size(), UINT32_MAX));
            if (auto e = check_counts(t, out_.tasks_.size())) return say(e->message);
            std::vector<const char *> tag_texts;
            for (size_t k = 0; k < tags->size(); ++k) {
                const char *tag = nullptr;
                if (!text_value((*tags)[k], where + "'s tag #" + std::to_string(k), tag)) return false;
                tag_texts.push_back(tag);
            }
            std::vector<th_param_desc> param_descs;
            for (size_t k = 0; k < params->size(); ++k) {
                const json &param = (*params)[k];
                const std::string owner = where + "'s parameter #" + std::to_string(k);
                if (!param.is_object()) return wrong(owner, "an object");
                th_param_desc d{};
                d.struct_size = sizeof d;
                uint64_t flags = 0;
                if (!unsigned_member(param, "flags", owner, UINT32_MAX, flags) ||
                    !text_member(param, "name", owner, d.name) ||
                    !text_member(param, "annotation", owner, d.annotation) ||
                    !text_member(param, "default_json", owner, d.default_json) ||
                    !text_member(param, "schema_json", owner, d.schema_json))
                    return false;
                d.flags = static_cast<uint32_t>(flags);
                param_descs.push_back(d);
            }
            out_.tasks_.push_back(t);
            out_.params_.push_back(std::move(param_descs));
            out_.tags_.push_back(std::move(tag_texts));
            out_.has_validate_.push_back(validate);
            return true;
        }

        bool say(std::string problem) {
            problem_ = std::move(problem);
            return false;
        }
        bool wrong(const std::string &what, const std::string &expected) { return say(what + " is not " + expected); }
        const json *member(const json &object, const char *key, const std::string &where) {
            auto it = object.find(key);
            if (it == object.end()) {
                say(where + " has no \"" + key + "\"");
                return nullptr;
            }
            return &*it;
        }
        // A string or null: the string kept in the descriptor, NULL for null.
        bool text_value(const json &value, const std::string &what, const char *&out) {
            if (value.is_null()) {
                out = nullptr;
                return true;
            }
            if (!value.is_string()) return wrong(what, "a string or null");
            const std::string &text = value.get_ref<const std::string &>();
            // A C string ends at its first NUL: the host would read less than was sent.
            if (text.find('\0') != std::string::npos) return say(what + " holds a NUL character");
            out = out_.text_.emplace_back(text).c_str();
            return true;
        }
        bool text_member(const json &object, const char *key, const std::string &where, const char *&out) {
            const json *value = member(object, key, where);
            return value != nullptr && text_value(*value, where + "'s \"" + key + "\"", out);
        }
        bool bool_member(const json &object, const char *key, const std::string &where, bool &out) {
            const json *value = member(object, key, where);
            if (value == nullptr) return false;
            if (!value->is_boolean()) return wrong(where + "'s \"" + key + "\"", "true or false");
            out = value->get<bool>();
            return true;
        }
        bool unsigned_member(const json &object, const char *key, const std::string &where, uint64_t max,
                             uint64_t &out) {
            const json *value = member(object, key, where);
            if (value == nullptr) return false;
            if (!value->is_number_unsigned() || value->get<uint64_t>() > max)
                return wrong(where + "'s \"" + key + "\"", "a whole number from 0 to " + std::to_string(max));
            out = value->get<uint64_t>();
            return true;
        }

        Descriptor &out_;
        std::string problem_;
    };

    static Result<std::unique_ptr<const Descriptor>> from_json(std::string_view text) {
        const std::string malformed = "the trial process reported an unusable descriptor: ";
        if (text.size() > max_descriptor_json_bytes)
            return refusal(malformed + "it is larger than " + std::to_string(max_descriptor_json_bytes >> 20) + " MiB");
        // A descriptor nests a few levels (schemas travel as strings);
        // anything deeper is not one, and is not given to a parser at all.
        if (json_text::nesting_exceeds(text, 8)) return refusal(malformed + "it is nested too deeply");
        const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) return refusal(malformed + "it is not JSON");
        auto out = std::make_unique<Descriptor>();
        out->remote_ = true;
        JsonReader reader(*out);
        if (!reader.read(doc)) return refusal(malformed + reader.problem());
        return finish(std::move(out), false);
    }

    static std::string to_json(const Descriptor &d) {
        auto text = [](const char *s) { return s ? json(s) : json(nullptr); };
        const th_plugin_desc &p = d.plugin_;
        json tasks = json::array();
        for (uint32_t i = 0; i < p.task_count; ++i) {
            const th_task_desc &t = p.tasks[i];
            json tags = json::array();
            for (uint32_t k = 0; k < t.tag_count; ++k) tags.push_back(text(t.tags[k]));
            json params = json::array();
            for (uint32_t k = 0; k < t.param_count; ++k) {
                const th_param_desc &q = t.params[k];
                params.push_back({{"flags", q.flags},
                                  {"name", text(q.name)},
                                  {"annotation", text(q.annotation)},
                                  {"default_json", text(q.default_json)},
                                  {"schema_json", text(q.schema_json)}});
            }
            tasks.push_back(
                {{"name", text(t.name)},
                 {"doc", text(t.doc)},
                 {"signature", text(t.signature)},
                 {"tags", std::move(tags)},
                 {"params", std::move(params)},
                 {"params_schema_json", text(t.params_schema_json)},
                 {"default_timeout_s", std::isfinite(t.default_timeout_s) ? json(t.default_timeout_s) : json(nullptr)},
                 {"has_validate", d.has_validate(i)},
                 {"flags", t.flags},
                 {"priority", t.priority},
                 {"retry",
                  {{"max_attempts", t.retry_max_attempts},
                   {"flags", t.retry_flags},
                   {"delay_s", t.retry_delay_s},
                   {"max_delay_s", t.retry_max_delay_s}}},
                 {"every", t.every_cron ? json{{"cron", t.every_cron}, {"tz", text(t.every_tz)}} : json(nullptr)}});
        }
        const json doc = {{"name", text(p.name)},
                          {"version", text(p.version)},
                          {"build_info", text(p.build_info)},
                          {"abi_major", p.abi_major},
                          {"abi_minor", p.abi_minor},
                          {"declaration_error", text(p.declaration_error)},
                          {"has_init", d.has_init()},
                          {"has_shutdown", d.has_shutdown()},
                          {"tasks", std::move(tasks)}};
        // An accepted descriptor's text is UTF-8 (check_text): nothing to replace.
        return doc.dump(-1, ' ', false, json::error_handler_t::replace);
    }
};

Result<std::unique_ptr<const Descriptor>> read_descriptor(const th_plugin_desc *d) {
    return DescriptorBuilder::read(d);
}

std::string descriptor_to_json(const Descriptor &d) { return DescriptorBuilder::to_json(d); }

Result<std::unique_ptr<const Descriptor>> descriptor_from_json(std::string_view text) {
    try {
        return DescriptorBuilder::from_json(text);
    } catch (const std::exception &e) {  // out of memory, say: still a refusal, never an escape
        return refusal(std::string("the trial process reported an unusable descriptor: ") + e.what());
    }
}

}  // namespace taskhost::plugins
