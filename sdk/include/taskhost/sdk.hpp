// Below C++20 nothing else here compiles: say so once, first, and stop (gcc
// and clang go on after #error, so a missing include ends the compilation).
#if !defined(__cplusplus) || __cplusplus < 202002L
#error "taskhost/sdk.hpp needs C++20: build with -std=c++20 (taskhost_add_plugin() does); C uses abi.h"
#include <taskhost: stopped, see the error above>
#endif

// taskhost C++ SDK (header-only): write tasks as ordinary functions, declare
// the plugin once, and only C crosses the boundary (abi.h).
//
//   #include <taskhost/sdk.hpp>
//   using taskhost::json;
//   using namespace taskhost;
//
//   json greet_user(std::string name) { return {{"message", "Hello, " + name + "!"}}; }
//   json store_result(Artifacts &artifacts, json data) { return {{"artifact_id", artifacts.save(data)}}; }
//
//   TASKHOST_PLUGIN("demo", "1.0.0",
//       task("greet_user", greet_user).doc("Simple task that returns a greeting.")
//           .tags({"demo", "simple"}).param("name", "World"),
//       task("store_result", store_result).tags({"storage"}).params("data"));
//
// Parameters
//   Caller parameters: bool, any integer type (range-checked), float/double,
//   std::string, json, std::vector<T>, std::map<std::string, T>,
//   std::optional<T> (nested freely), or any class nlohmann::json can read.
//   Name them in order with .param(name) (required), .param(name, default)
//   (optional; default checked against the type), or all with .params(a, ...).
//   std::optional<T> without a default is optional with default null.
//   Unknown and missing parameters and wrong types are refused with one line
//   naming the parameter, both by validate() and by invoke().
//
//   Injected services, recognised by type and never named: Context,
//   Artifacts, Database, Session, Scheduler (by reference or by value).
//   Taking Session makes the call a transaction: begun before the task,
//   committed when it returns, rolled back when it throws.
//
// Results and errors
//   Return json, void (-> null) or anything convertible to json. Anything the
//   task throws is caught in the plugin and reported as (demangled type,
//   what(), the stack where it was thrown as module+offset frames, which the
//   host turns into function, file and line); Context::throw_if_cancelled()
//   throws Cancelled.
//
// Plugin declaration
//   TASKHOST_PLUGIN(name, version, task(...)...)
//   TASKHOST_PLUGIN_WITH_INIT(name, version, init, task(...)...)
//     init: a function or lambda taking Database& and/or Context& (any order),
//     run once at load with the host's load-time call; if it throws, its
//     what() is the reason the host refuses the plugin.
//   Either defines the single exported symbol taskhost_plugin_v1, and (hidden,
//   see detail/throw_site.hpp) the hook that records where exceptions are
//   thrown. Use it once per plugin (.so), at namespace scope.
//
// Where things are (include only this file):
//   taskhost/task.hpp       task(), Task<F> builder
//   taskhost/services.hpp   Context, Artifacts, Database, Session, Scheduler
//   taskhost/errors.hpp     Cancelled, InvalidParams, ServiceUnavailable, HostError
//   taskhost/plugin.hpp     build_plugin<Tag>() (what the macros expand to)
//   taskhost/detail/        conversions, exception capture (internals)
#pragma once

#include <taskhost/abi.h>
#include <taskhost/errors.hpp>
#include <taskhost/plugin.hpp>
#include <taskhost/services.hpp>
#include <taskhost/task.hpp>

#include <nlohmann/json.hpp>

namespace taskhost {
using json = nlohmann::json;
}  // namespace taskhost

#define TASKHOST_PLUGIN_WITH_INIT(NAME, VERSION, INIT, ...)                                         \
    namespace {                                                                                     \
    struct taskhost_plugin_tag_ {};                                                                 \
    }                                                                                               \
    extern "C" TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) {                           \
        return ::taskhost::detail::plugin_entry<taskhost_plugin_tag_>([] {                          \
            using namespace ::taskhost;                                                             \
            return ::taskhost::detail::plugin_spec(NAME, VERSION, INIT __VA_OPT__(, ) __VA_ARGS__); \
        });                                                                                         \
    }                                                                                               \
    TASKHOST_DETAIL_THROW_HOOKS

// clang-format 14 spaces the braces of NoInit{}.
// clang-format off
#define TASKHOST_PLUGIN(NAME, VERSION, ...)                                                        \
    TASKHOST_PLUGIN_WITH_INIT(NAME, VERSION, ::taskhost::detail::NoInit{} __VA_OPT__(, ) __VA_ARGS__)
// clang-format on
