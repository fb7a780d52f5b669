// taskhost SDK: turns a plugin declaration (name, version, optional init,
// tasks) into the static C descriptor the host reads. The descriptor has no
// user-data pointer, so each task's invoke/validate is a distinct function
// instantiated per (plugin tag, task index) that finds the one holder of that
// plugin through a static pointer.
#pragma once

#include <taskhost/abi.h>
#include <taskhost/detail/exceptions.hpp>
#include <taskhost/services.hpp>
#include <taskhost/task.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define TASKHOST_SDK_VERSION "0.1.0"

namespace taskhost {
namespace detail {

struct NoInit {};

template <class Init, class... Ts>
struct PluginSpec {
    std::string name;
    std::string version;
    Init init;
    std::tuple<Ts...> tasks;
};

template <class Init, class... Ts>
PluginSpec<std::decay_t<Init>, std::decay_t<Ts>...> plugin_spec(std::string name, std::string version, Init &&init,
                                                                Ts &&...tasks) {
    static_assert((is_task<std::decay_t<Ts>>::value && ...),
                  "taskhost: every argument after the name/version (and init) must be task(...)");
    return {std::move(name), std::move(version), std::forward<Init>(init),
            std::tuple<std::decay_t<Ts>...>(std::forward<Ts>(tasks)...)};
}

inline std::string sdk_build_info() {
    std::string s = "taskhost-sdk " TASKHOST_SDK_VERSION " (ABI " + std::to_string(TH_ABI_MAJOR) + '.' +
                    std::to_string(TH_ABI_MINOR) + "); ";
#if defined(__clang__)
    s += "clang " __clang_version__;
#elif defined(__GNUC__)
    s += "g++ " __VERSION__;
#else
    s += "unknown compiler";
#endif
    s += "; nlohmann_json " + std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + '.' +
         std::to_string(NLOHMANN_JSON_VERSION_MINOR) + '.' + std::to_string(NLOHMANN_JSON_VERSION_PATCH);
    s += "; C++ " + std::to_string(__cplusplus);
    return s;
}

// Runs an init callable whose parameters are Database and/or Context.
template <class Init, class... A>
void run_init(Init &init, Services &services, std::tuple<A...> *) {
    // clang-format 14 mangles this fold expression.
    // clang-format off
    static_assert(((std::is_same_v<std::remove_cvref_t<A>, Database> ||
                    std::is_same_v<std::remove_cvref_t<A>, Context>) && ...),
                  "taskhost: the init function may only take Database& and/or Context&");
    // clang-format on
    (void)services;
    std::invoke(init, static_cast<A &&>(services.template get<std::remove_cvref_t<A>>())...);
}

template <class Tag, class Spec>
class PluginHolder;

template <class Tag, class Init, class... Ts>
class PluginHolder<Tag, PluginSpec<Init, Ts...>> {
    static constexpr std::size_t N = sizeof...(Ts);
    static constexpr bool has_init = !std::is_same_v<Init, NoInit>;

public:
    explicit PluginHolder(PluginSpec<Init, Ts...> &&spec) : spec_(std::move(spec)) {
        build_info_ = sdk_build_info();
        setup(std::make_index_sequence<N>{});
        desc_.magic = TH_ABI_MAGIC;
        desc_.abi_major = TH_ABI_MAJOR;
        desc_.abi_minor = TH_ABI_MINOR;
        desc_.struct_size = sizeof(th_plugin_desc);
        desc_.task_count = static_cast<std::uint32_t>(N);
        desc_.name = spec_.name.c_str();
        desc_.version = spec_.version.c_str();
        desc_.tasks = descs_.data();
        // Declaration errors are reported, not thrown: the host refuses the
        // plugin with them ("invalid declaration: ..."). init repeats them
        // for 1.0 hosts, which do not read declaration_error.
        desc_.init = (has_init || !error_.empty()) ? &init_thunk : nullptr;
        desc_.shutdown = nullptr;
        desc_.build_info = build_info_.c_str();
        desc_.declaration_error = error_.empty() ? nullptr : error_.c_str();
        instance = this;  // last: the thunks may run once the host has the descriptor
    }
    PluginHolder(const PluginHolder &) = delete;
    PluginHolder &operator=(const PluginHolder &) = delete;

    const th_plugin_desc *descriptor() const noexcept { return &desc_; }

private:
    struct CStrings {
        std::vector<const char *> tags;
        std::vector<th_param_desc> params;
    };

    template <std::size_t... I>
    void setup(std::index_sequence<I...>) {
        (setup_one<I>(), ...);
    }

    template <std::size_t I>
    void setup_one() {
        auto &task = std::get<I>(spec_.tasks);
        const std::string problems = task.prepare();
        if (!problems.empty()) add_problem(error_, problems);
        meta_[I] = task.describe();
        const TaskMeta &m = meta_[I];
        // Its schedule's runs send no params.
        if (!m.every_cron.empty())
            for (const auto &p : m.params)
                if (p.flags & TH_PARAM_REQUIRED)
                    add_problem(error_, "task '" + m.name + "': every() runs it with params {}, but parameter '" +
                                            p.name + "' has no default");
        CStrings &c = c_[I];
        for (const auto &t : m.tags) c.tags.push_back(t.c_str());
        for (const auto &p : m.params) {
            c.params.push_back(th_param_desc{static_cast<std::uint32_t>(sizeof(th_param_desc)), p.flags, p.name.c_str(),
                                             p.annotation.c_str(), p.default_json ? p.default_json->c_str() : nullptr,
                                             p.schema_json ? p.schema_json->c_str() : nullptr});
        }
        th_task_desc &d = descs_[I];
        d.struct_size = sizeof(th_task_desc);
        d.reserved = 0;
        d.name = m.name.c_str();
        d.doc = m.doc ? m.doc->c_str() : nullptr;
        d.signature = m.signature.c_str();
        d.tags = c.tags.data();
        d.tag_count = static_cast<std::uint32_t>(c.tags.size());
        d.param_count = static_cast<std::uint32_t>(c.params.size());
        d.params = c.params.data();
        d.params_schema_json = m.params_schema_json.c_str();
        d.default_timeout_s = m.timeout_s;
        d.invoke = &invoke_thunk<I>;
        d.validate = &validate_thunk<I>;
        d.flags = m.retry_safe ? static_cast<std::uint32_t>(TH_TASK_RETRY_SAFE) : 0u;
        d.priority = m.priority;
        d.retry_max_attempts = m.retry_max_attempts;
        d.retry_flags = m.retry_flags;
        d.retry_delay_s = m.retry_delay_s;
        d.retry_max_delay_s = m.retry_max_delay_s;
        d.every_cron = m.every_cron.empty() ? nullptr : m.every_cron.c_str();
        d.every_tz = m.every_cron.empty() ? nullptr : m.every_tz.c_str();
    }

    template <std::size_t I>
    static th_status invoke_thunk(const th_host_api *host, th_call *call, const char *params,
                                  std::size_t len) noexcept {
        return std::get<I>(instance->spec_.tasks).invoke(host, call, params, len);
    }

    template <std::size_t I>
    static th_status validate_thunk(const char *params, std::size_t len, th_sink *err) noexcept {
        return std::get<I>(instance->spec_.tasks).validate(params, len, err);
    }

    static th_status init_thunk(const th_host_api *host, th_call *call, th_sink *err) noexcept {
        PluginHolder *self = instance;
        if (!self->error_.empty()) {
            sink_write(err, self->error_);
            return TH_ERROR;
        }
        if constexpr (has_init) {
            try {
                Services services(host, call);
                using args = typename callable_traits<Init>::args;
                run_init(self->spec_.init, services, static_cast<args *>(nullptr));
            } catch (...) {
                try {
                    sink_write(err, current_exception_info().message);
                } catch (...) {
                    sink_write(err, "plugin init failed");
                }
                return TH_ERROR;
            }
        }
        (void)host;
        (void)call;
        return TH_OK;
    }

    static inline PluginHolder *instance = nullptr;

    PluginSpec<Init, Ts...> spec_;
    std::string build_info_;
    std::string error_;
    std::array<TaskMeta, N> meta_{};
    std::array<CStrings, N> c_{};
    std::array<th_task_desc, N> descs_{};
    th_plugin_desc desc_{};
};

// Used only if building the descriptor itself failed (out of memory, or a
// default value whose conversion to json threw): a descriptor with no tasks
// whose declaration_error (and init, for 1.0 hosts) explains why.
inline char g_entry_failure[256] = "plugin descriptor could not be built";

inline th_status failed_init(const th_host_api *, th_call *, th_sink *err) noexcept {
    sink_write(err, g_entry_failure);
    return TH_ERROR;
}

inline const th_plugin_desc *failed_descriptor(const char *why) noexcept {
    std::snprintf(g_entry_failure, sizeof g_entry_failure, "plugin descriptor could not be built: %s", why);
    static th_plugin_desc desc{TH_ABI_MAGIC,
                               TH_ABI_MAJOR,
                               TH_ABI_MINOR,
                               sizeof(th_plugin_desc),
                               0,
                               "unknown",
                               "0.0.0",
                               nullptr,
                               &failed_init,
                               nullptr,
                               "taskhost-sdk " TASKHOST_SDK_VERSION,
                               g_entry_failure};
    return &desc;
}

// The body of the exported entry: builds the holder once per Tag from the
// spec `make()` returns (the first call wins) and never throws.
template <class Tag, class Factory>
const th_plugin_desc *plugin_entry(Factory &&make) noexcept {
    try {
        static PluginHolder<Tag, decltype(make())> holder(make());
        return holder.descriptor();
    } catch (const std::exception &e) {
        return failed_descriptor(e.what());
    } catch (...) {
        return failed_descriptor("unknown exception");
    }
}

}  // namespace detail

// Builds (on the first call per Tag) and returns a plugin descriptor without
// exporting anything. TASKHOST_PLUGIN uses this; tests and hosts embedding
// tasks in-process can call it directly with their own tag types.
template <class Tag, class... Ts>
const th_plugin_desc *build_plugin(std::string name, std::string version, Ts &&...tasks) noexcept {
    return detail::plugin_entry<Tag>(
        [&] { return detail::plugin_spec(std::move(name), std::move(version), detail::NoInit{}, tasks...); });
}

// As build_plugin, with an init callable taking Database& and/or Context&.
template <class Tag, class Init, class... Ts>
const th_plugin_desc *build_plugin_with_init(std::string name, std::string version, Init &&init,
                                             Ts &&...tasks) noexcept {
    return detail::plugin_entry<Tag>(
        [&] { return detail::plugin_spec(std::move(name), std::move(version), std::forward<Init>(init), tasks...); });
}

}  // namespace taskhost
