// taskhost SDK: Task<F>, the builder returned by taskhost::task(), and the
// machinery behind it: deducing parameters from F, describing them for the
// descriptor, binding a params object to them, injecting services, and
// running the call so that nothing but C crosses back to the host.
#pragma once

#include <taskhost/abi.h>
#include <taskhost/detail/convert.hpp>
#include <taskhost/detail/exceptions.hpp>
#include <taskhost/services.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace taskhost {
namespace detail {

// ---- What F looks like -------------------------------------------------------

template <class>
inline constexpr bool dependent_false_v = false;

// The signature behind a function pointer or a pointer to operator().
template <class F>
struct signature_of {
    static_assert(dependent_false_v<F>,
                  "taskhost: task() takes a function pointer or a lambda/function object whose "
                  "parameters have concrete types (not auto)");
    using result = void;
    using args = std::tuple<>;
};
template <class R, class... A>
struct signature_of<R (*)(A...)> {
    using result = R;
    using args = std::tuple<A...>;
};
template <class R, class... A>
struct signature_of<R (*)(A...) noexcept> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...)> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) const> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) noexcept> : signature_of<R (*)(A...)> {};
template <class C, class R, class... A>
struct signature_of<R (C::*)(A...) const noexcept> : signature_of<R (*)(A...)> {};

// Function pointers, and lambdas / function objects with one non-template
// operator().
template <class F>
struct callable_traits : signature_of<F> {};
// clang-format 14 mangles this C++20 construct.
// clang-format off
template <class F>
    requires requires { &F::operator(); }
struct callable_traits<F> : signature_of<decltype(&F::operator())> {};
// clang-format on

// ---- Injected services ---------------------------------------------------------

template <class T>
struct service_info {
    static constexpr bool injected = false;
};
#define TASKHOST_DETAIL_SERVICE(Type, lower)             \
    template <>                                          \
    struct service_info<Type> {                          \
        static constexpr bool injected = true;           \
        static constexpr const char *type_name = #Type;  \
        static constexpr const char *param_name = lower; \
    };
TASKHOST_DETAIL_SERVICE(Context, "context")
TASKHOST_DETAIL_SERVICE(Artifacts, "artifacts")
TASKHOST_DETAIL_SERVICE(Database, "database")
TASKHOST_DETAIL_SERVICE(Session, "session")
TASKHOST_DETAIL_SERVICE(Scheduler, "scheduler")
#undef TASKHOST_DETAIL_SERVICE

template <class A>
inline constexpr bool is_injected_v = service_info<std::remove_cvref_t<A>>::injected;

// One of each service for a call; they are two-pointer handles.
struct Services {
    Services(const th_host_api *host, th_call *call) noexcept
        : context(host, call),
          artifacts(host, call),
          database(host, call),
          session(host, call),
          scheduler(host, call) {}

    template <class S>
    S &get() noexcept {
        if constexpr (std::is_same_v<S, Context>) return context;
        else if constexpr (std::is_same_v<S, Artifacts>) return artifacts;
        else if constexpr (std::is_same_v<S, Database>) return database;
        else if constexpr (std::is_same_v<S, Session>) return session;
        else return scheduler;
    }

    Context context;
    Artifacts artifacts;
    Database database;
    Session session;
    Scheduler scheduler;
};

// ---- Declaration errors the compiler reports ------------------------------------
// C++20 static_assert messages are fixed strings, but the compiler names the
// class a failing one is in, with its template arguments, in the first
// lines of the error: these classes carry what the message cannot.

template <std::size_t N>
struct position {};  // of a parameter in the function, counting from 1
template <std::size_t N>
struct names {};
template <std::size_t N>
struct caller_parameters {};

template <class Position, class Type>
struct unsupported_parameter {
    static_assert(dependent_false_v<Type>,
                  "taskhost: a task parameter has a type the SDK cannot read from JSON (its position and type are "
                  "in unsupported_parameter<...> above); use bool, an integer, float/double, std::string, json, "
                  "std::vector<T>, std::map<std::string, T>, std::optional<T>, a type nlohmann::json can read, "
                  "or a service (Context&, Database&, ...)");
    static constexpr bool value = false;
};

template <class Names, class CallerParameters>
struct params_count_mismatch {
    static_assert(dependent_false_v<Names>,
                  "taskhost: .params() names every caller parameter of the function, in order, and no service "
                  "(the counts are in params_count_mismatch<...> above)");
    static constexpr bool value = false;
};

// True, or a compile error naming the parameter (A is its declared type).
template <std::size_t Position, class A>
constexpr bool parameter_type_supported() {
    if constexpr (is_injected_v<A> || value_traits<std::remove_cvref_t<A>>::supported) return true;
    else return unsupported_parameter<position<Position>, std::remove_cvref_t<A>>::value;
}

template <class Args, class Indices>
struct parameter_types_check;
template <class... A, std::size_t... I>
struct parameter_types_check<std::tuple<A...>, std::index_sequence<I...>> {
    static constexpr bool value = (parameter_type_supported<I + 1, A>() && ...);
};

// ---- Argument layout -----------------------------------------------------------

// Splits F's arguments into injected services and caller parameters (the
// ones named by .param()/.params(), in order).
template <class Args>
struct layout;
template <class... A>
struct layout<std::tuple<A...>> {
    static constexpr std::size_t arity = sizeof...(A);
    static constexpr std::size_t caller_count = (std::size_t{0} + ... + (is_injected_v<A> ? 0u : 1u));
    static constexpr std::size_t not_caller = static_cast<std::size_t>(-1);
    // Argument position -> caller parameter position (not_caller if injected).
    static constexpr std::array<std::size_t, arity> caller_index = [] {
        std::array<std::size_t, arity> out{};
        std::size_t i = 0, k = 0;
        ((out[i++] = is_injected_v<A> ? not_caller : k++), ...);
        (void)i;
        (void)k;
        return out;
    }();
    // The caller parameters' value types, in order.
    using values = decltype(std::tuple_cat(
        std::declval<std::conditional_t<is_injected_v<A>, std::tuple<>, std::tuple<std::remove_cvref_t<A>>>>()...));
    static constexpr bool uses_session = (std::is_same_v<std::remove_cvref_t<A>, Session> || ...);
    // Each unsupported parameter is a compile error of its own.
    static constexpr bool all_supported = parameter_types_check<std::tuple<A...>, std::index_sequence_for<A...>>::value;
    // clang-format 14 mangles this fold expression.
    // clang-format off
    static constexpr bool no_service_pointers =
        (!(std::is_pointer_v<std::remove_cvref_t<A>> &&
           is_injected_v<std::remove_pointer_t<std::remove_cvref_t<A>>>) && ...);
    // clang-format on
};

// ---- Descriptor text, as plain strings (the holder keeps them alive) -------------

struct ParamMeta {
    std::string name;
    std::string annotation;
    std::optional<std::string> default_json;
    ordered_json schema;  // unused when injected
    std::optional<std::string> schema_json;
    std::uint32_t flags = 0;
};

struct TaskMeta {
    std::string name;
    std::optional<std::string> doc;
    std::string signature;
    std::vector<std::string> tags;
    std::vector<ParamMeta> params;
    std::string params_schema_json;
    double timeout_s = 0;
    bool retry_safe = false;
    int priority = 0;
    std::uint32_t retry_max_attempts = 0, retry_flags = 0;
    double retry_delay_s = 0, retry_max_delay_s = 0;
    std::string every_cron, every_tz;  // empty: no schedule
};

inline void add_problem(std::string &all, const std::string &one) {
    if (!all.empty()) all += "; ";
    all += one;
}

inline json parse_params(const char *text, std::size_t len) {
    if (text == nullptr || len == 0) return json::object();
    try {
        return json::parse(text, text + len);
    } catch (const json::parse_error &e) {
        throw InvalidParams(std::string("params are not valid JSON: ") + e.what());
    }
}

// Reports the exception being handled, with the stack where it was thrown
// if the plugin's __cxa_throw recorded it (else where it was caught), as
// frames for the host to symbolize, or as text to an older host. Call from
// a catch.
// `flags`: more th_trace_flags (TH_ERROR_FINAL).
inline void report_current_exception(const th_host_api *host, th_call *call, std::uint32_t flags = 0) noexcept {
    try {
        const ExceptionInfo info = current_exception_info();
        const ThrowRecord *thrown = find_throw(current_exception_object(), abi::__cxa_current_exception_type());
        void *here[max_thrown_frames];
        std::vector<ModuleFrame> frames = thrown != nullptr
                                              ? locate_frames(thrown->frames, thrown->count)
                                              : locate_frames(here, capture_stack(here, max_thrown_frames, 0));
        trim_to_own_module(frames);
        forget_throws();
        if (TH_HOST_HAS(host, set_error_frames)) {
            std::vector<th_frame> abi_frames;
            abi_frames.reserve(frames.size());
            for (const ModuleFrame &f : frames) abi_frames.push_back({f.module.c_str(), f.build_id.c_str(), f.offset});
            host->set_error_frames(call, info.type.c_str(), info.message.c_str(), abi_frames.data(), abi_frames.size(),
                                   flags | (thrown != nullptr ? std::uint32_t{TH_TRACE_AT_THROW} : 0u));
        } else {
            const std::string traceback = format_traceback(info, frames, thrown != nullptr);
            host->set_error(call, info.type.c_str(), info.message.c_str(), traceback.c_str());
        }
    } catch (...) {
        host->set_error(call, "std::bad_alloc", "out of memory while reporting an exception", "");
    }
}

// Whether the exception being handled is an E (or derives from one). Call
// from a catch.
template <class E>
bool current_exception_is() noexcept {
    try {
        throw;
    } catch (const E &) {
        return true;
    } catch (...) {
        return false;
    }
}
template <class... E>
bool current_exception_is_any() noexcept {
    return (current_exception_is<E>() || ...);
}

}  // namespace detail

// How long a failed job waits before its next attempt (Task::retry).
struct Backoff {
    // The same wait before every attempt.
    static Backoff fixed(double seconds) { return {seconds, seconds, false, false}; }
    // `first` seconds before the second attempt, doubling each time up to
    // `max`; each wait varied by up to 20 % either way unless `jitter` is
    // false, so that jobs that failed together do not all come back at once.
    static Backoff exponential(double first = 1, double max = 3600, bool jitter = true) {
        return {first, max, true, jitter};
    }
    double delay_s, max_delay_s;
    bool doubling, jitter;
};

// ---- The builder ------------------------------------------------------------------

// Returned by task(name, fn). Chain .doc/.tags/.timeout and name the caller
// parameters with .param/.params; hand it to TASKHOST_PLUGIN. A parameter
// type the SDK cannot convert, and a .params() list of the wrong length, are
// compile errors. Declaration mistakes that can only be seen at run time
// (the count of chained .param() names, duplicate names, a default of the
// wrong type) do not throw: the descriptor's declaration_error reports them
// and the host refuses the plugin with "invalid declaration: ...".
template <class F>
class Task {
    using traits = detail::callable_traits<F>;
    using R = typename traits::result;
    using Args = typename traits::args;
    using L = detail::layout<Args>;
    using Values = typename L::values;

    static_assert(L::no_service_pointers, "taskhost: take services by reference (Database&), not by pointer");
    // The error, if any, is unsupported_parameter's (naming the parameter):
    // this only makes the compiler look.
    static_assert(L::all_supported || true);
    static_assert(std::is_void_v<R> || std::is_constructible_v<json, R>,
                  "taskhost: a task must return void or something convertible to json");

public:
    // Number of parameters the caller supplies (injected services excluded).
    static constexpr std::size_t caller_count = L::caller_count;

    Task(std::string name, F fn) : name_(std::move(name)), fn_(std::move(fn)) {
        name_injected(std::make_index_sequence<L::arity>{});
    }

    // One-sentence description (the docstring).
    Task &doc(std::string text) {
        doc_ = std::move(text);
        return *this;
    }
    Task &tags(std::vector<std::string> tags) {
        tags_ = std::move(tags);
        return *this;
    }
    Task &tag(std::string tag) {
        tags_.push_back(std::move(tag));
        return *this;
    }
    // Default timeout for jobs of this task; <= 0 means none.
    Task &timeout(double seconds) {
        timeout_s_ = seconds;
        return *this;
    }
    // Running a job twice does no harm (it is idempotent): a job whose host
    // was lost while it ran (a crash, kill -9, a fleet host gone), or whose
    // worker process crashed, is attempted again instead of failed: up to
    // its retry() policy's attempts, or 3 in all without one.
    Task &retry_safe(bool yes = true) {
        retry_safe_ = yes;
        return *this;
    }
    // A job that fails runs again, up to `max_attempts` attempts in all,
    // after the waits `backoff` says; a submit's "retry" may change both.
    // Every exception retries except InvalidParams, PermanentError and,
    // once retry_on() names types, those not among them. A timeout retries
    // too. A crash of the worker process retries only a retry_safe() task.
    Task &retry(int max_attempts, Backoff backoff = Backoff::exponential()) {
        retry_max_attempts_ = max_attempts < 1 ? 1u : static_cast<std::uint32_t>(max_attempts);
        backoff_ = backoff;
        return *this;
    }
    // Only exceptions of these types (and types derived from them) retry;
    // any other fails the job at once.
    template <class... E>
    Task &retry_on() {
        static_assert(sizeof...(E) > 0, "taskhost: retry_on<E...>() names at least one exception type");
        retry_on_ = &detail::current_exception_is_any<E...>;
        return *this;
    }
    // Its jobs' priority when a submit gives none: -10..10, higher runs
    // first (a submit's "priority" overrides it).
    Task &priority(int level) {
        priority_ = level < -10 ? -10 : level > 10 ? 10 : level;
        return *this;
    }
    // Runs the task on a calendar: the host makes a job (params {}: every
    // parameter needs a default) whenever `cron` fires, in time zone `tz`
    // (an IANA name). Five fields "minute hour day month weekday", six
    // with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.
    // The host refuses the plugin if it cannot read them.
    Task &every(std::string cron, std::string tz = "UTC") {
        every_cron_ = std::move(cron);
        every_tz_ = std::move(tz);
        return *this;
    }
    // Names the next caller parameter; required unless it is std::optional.
    Task &param(std::string name) {
        names_.push_back(std::move(name));
        defaults_.emplace_back();
        return *this;
    }
    // Names the next caller parameter and gives it a default (any value
    // convertible to json; checked against the parameter's type).
    template <class D>
    Task &param(std::string name, D &&default_value) {
        names_.push_back(std::move(name));
        defaults_.emplace_back(json(std::forward<D>(default_value)));
        return *this;
    }
    // Names every caller parameter at once, in order, all required.
    template <class... S>
    Task &params(S &&...names) {
        if constexpr (sizeof...(S) != caller_count)  // the error is params_count_mismatch's
            static_assert(detail::params_count_mismatch<detail::names<sizeof...(S)>,
                                                        detail::caller_parameters<caller_count>>::value ||
                          true);
        (param(std::string(std::forward<S>(names))), ...);
        return *this;
    }

    const std::string &name() const noexcept { return name_; }

    // ---- used by the plugin holder (detail, but needs the types above) ----------

    // Checks the declaration once; returns the problems ("" when fine) and
    // remembers them so invoke/validate refuse to run.
    std::string prepare() {
        std::string problems;
        const auto complain = [&](const std::string &what) {
            detail::add_problem(problems, "task '" + name_ + "': " + what);
        };
        if (names_.size() != caller_count) {
            complain(std::to_string(names_.size()) + " parameter name(s) given for " + std::to_string(caller_count) +
                     " caller parameter(s); name every non-service parameter, in order, "
                     "with .param()/.params()");
        }
        std::vector<std::string> seen;
        for (const auto &n : injected_names_)
            if (!n.empty()) seen.push_back(n);
        for (const auto &n : names_) {
            if (n.empty()) complain("a parameter name is empty");
            else if (std::find(seen.begin(), seen.end(), n) != seen.end())
                complain("parameter name '" + n + "' is used twice");
            seen.push_back(n);
        }
        check_defaults(problems, std::make_index_sequence<caller_count>{});
        error_ = problems;
        return problems;
    }

    detail::TaskMeta describe() const {
        detail::TaskMeta meta;
        meta.name = name_;
        meta.doc = doc_;
        meta.tags = tags_;
        meta.timeout_s = timeout_s_;
        meta.retry_safe = retry_safe_;
        meta.priority = priority_;
        meta.every_cron = every_cron_;
        meta.every_tz = every_tz_;
        if (retry_max_attempts_ > 1) {
            meta.retry_max_attempts = retry_max_attempts_;
            meta.retry_flags = (backoff_.doubling ? std::uint32_t{TH_RETRY_EXPONENTIAL} : 0u) |
                               (backoff_.jitter ? std::uint32_t{TH_RETRY_JITTER} : 0u);
            meta.retry_delay_s = backoff_.delay_s;
            meta.retry_max_delay_s = backoff_.max_delay_s;
        }
        meta.params.reserve(L::arity);
        describe_params(meta.params, std::make_index_sequence<L::arity>{});

        detail::ordered_json schema = {{"type", "object"},
                                       {"properties", detail::ordered_json::object()},
                                       {"required", detail::ordered_json::array()},
                                       {"additionalProperties", false}};
        std::string signature = "(";
        for (auto &p : meta.params) {
            if (signature.size() > 1) signature += ", ";
            signature += p.name + ": " + p.annotation;
            if (p.default_json) signature += " = " + *p.default_json;
            if (p.flags & TH_PARAM_INJECTED) continue;
            p.schema_json = p.schema.dump(-1, ' ', false, detail::ordered_json::error_handler_t::replace);
            schema["properties"][p.name] = p.schema;
            if (p.flags & TH_PARAM_REQUIRED) schema["required"].push_back(p.name);
        }
        meta.signature = signature + ") -> " + return_annotation();
        meta.params_schema_json = schema.dump(-1, ' ', false, detail::ordered_json::error_handler_t::replace);
        return meta;
    }

    // Binds params exactly as invoke() would, without running the task.
    th_status validate(const char *text, std::size_t len, th_sink *err) const noexcept {
        try {
            if (!error_.empty()) {
                detail::sink_write(err, error_);
                return TH_ERROR;
            }
            const json params = detail::parse_params(text, len);
            (void)bind(params);
            return TH_OK;
        } catch (const InvalidParams &e) {
            detail::sink_write(err, e.what());
            return TH_INVALID;
        } catch (...) {
            try {
                const auto info = detail::current_exception_info();
                detail::sink_write(err, info.type + ": " + info.message);
            } catch (...) {
            }
            return TH_ERROR;
        }
    }

    th_status invoke(const th_host_api *host, th_call *call, const char *text, std::size_t len) noexcept {
        if (!TH_HOST_HAS(host, set_result) || !TH_HOST_HAS(host, set_error)) return TH_ERROR;
        detail::forget_throws();  // only this call's throws may be reported
        try {
            if (!error_.empty()) {
                host->set_error(call, "taskhost::DeclarationError", error_.c_str(), "");
                return TH_ERROR;
            }
            // Kept alive for the whole call: converted values may refer into it.
            const json params = detail::parse_params(text, len);
            Values values = bind(params);
            detail::Services services(host, call);
            std::string result;
            if constexpr (L::uses_session) {
                detail::SessionAccess::begin(services.session);
                try {
                    result = run(services, values);
                } catch (...) {
                    rollback_quietly(services.session, host, call);
                    throw;
                }
                // Committed only once the result is serialised: a result we
                // cannot deliver must not leave its writes behind.
                detail::SessionAccess::end(services.session, true);
            } else {
                result = run(services, values);
            }
            host->set_result(call, result.data(), result.size());
            return TH_OK;
        } catch (const InvalidParams &e) {
            host->set_error(call, "taskhost::InvalidParams", e.what(), "");
            return TH_ERROR;
        } catch (...) {
            // A Cancelled is how a task stops at its timeout, which retries.
            const bool final = detail::current_exception_is<PermanentError>() ||
                               (retry_on_ && !retry_on_() && !detail::current_exception_is<Cancelled>());
            detail::report_current_exception(host, call, final ? std::uint32_t{TH_ERROR_FINAL} : 0u);
            return TH_ERROR;
        }
    }

private:
    template <std::size_t... I>
    void name_injected(std::index_sequence<I...>) {
        injected_names_.resize(L::arity);
        (name_one_injected<I>(), ...);
    }
    template <std::size_t I>
    void name_one_injected() {
        using A = std::tuple_element_t<I, Args>;
        if constexpr (detail::is_injected_v<A>) {
            // "database", then "database_2" if a task takes it twice.
            const std::string base = detail::service_info<std::remove_cvref_t<A>>::param_name;
            std::string n = base;
            for (int k = 2; std::find(injected_names_.begin(), injected_names_.end(), n) != injected_names_.end(); ++k)
                n = base + '_' + std::to_string(k);
            injected_names_[I] = n;
        }
    }

    template <std::size_t... K>
    void check_defaults(std::string &problems, std::index_sequence<K...>) const {
        (check_default<K>(problems), ...);
        (void)problems;
    }
    template <std::size_t K>
    void check_default(std::string &problems) const {
        if (K >= names_.size() || !defaults_[K]) return;
        using V = std::tuple_element_t<K, Values>;
        try {
            (void)detail::value_traits<V>::from_json(*defaults_[K], detail::Path{nullptr, names_[K], 0, nullptr});
        } catch (const InvalidParams &e) {
            detail::add_problem(problems, "task '" + name_ + "': invalid default for " + e.what());
        }
    }

    template <std::size_t... I>
    void describe_params(std::vector<detail::ParamMeta> &out, std::index_sequence<I...>) const {
        (out.push_back(describe_param<I>()), ...);
        (void)out;
    }
    template <std::size_t I>
    detail::ParamMeta describe_param() const {
        using A = std::tuple_element_t<I, Args>;
        detail::ParamMeta m;
        if constexpr (detail::is_injected_v<A>) {
            m.name = injected_names_[I];
            m.annotation = detail::service_info<std::remove_cvref_t<A>>::type_name;
            m.flags = TH_PARAM_INJECTED;
        } else {
            constexpr std::size_t k = L::caller_index[I];
            using V = std::tuple_element_t<k, Values>;
            // Unnamed (a declaration error reported by init): keep the
            // descriptor well-formed anyway.
            m.name = k < names_.size() ? names_[k] : "arg" + std::to_string(k);
            m.annotation = detail::value_traits<V>::annotation();
            m.schema = detail::value_traits<V>::schema();
            std::optional<json> def = k < defaults_.size() ? defaults_[k] : std::nullopt;
            if (!def && detail::is_optional_v<V>) def = json(nullptr);
            if (def) {
                m.default_json = detail::to_json_text(*def, "a parameter's default");
                m.schema["default"] = detail::ordered_json::parse(*m.default_json);
            } else {
                m.flags = TH_PARAM_REQUIRED;
            }
        }
        return m;
    }

    static std::string return_annotation() {
        using RV = std::remove_cvref_t<R>;
        if constexpr (std::is_void_v<R>) return "void";
        else if constexpr (detail::value_traits<RV>::supported) return detail::value_traits<RV>::annotation();
        else return "json";
    }

    Values bind(const json &params) const {
        if (names_.size() != caller_count)  // only reachable if prepare() was skipped
            throw InvalidParams("task '" + name_ + "' does not name all its parameters");
        if (!params.is_object()) throw InvalidParams("params must be a JSON object");
        // Unknown names first: a misspelt name is then reported as what it is.
        for (auto it = params.begin(); it != params.end(); ++it) {
            if (std::find(names_.begin(), names_.end(), it.key()) == names_.end())
                throw InvalidParams("unknown parameter '" + it.key() + "'");
        }
        return bind_values(params, std::make_index_sequence<caller_count>{});
    }
    template <std::size_t... K>
    Values bind_values(const json &params, std::index_sequence<K...>) const {
        (void)params;
        return Values{bind_one<K>(params)...};  // braced: converted left to right
    }
    template <std::size_t K>
    std::tuple_element_t<K, Values> bind_one(const json &params) const {
        using V = std::tuple_element_t<K, Values>;
        const std::string &name = names_[K];
        const detail::Path at{nullptr, name, 0, nullptr};
        if (const auto it = params.find(name); it != params.end()) return detail::value_traits<V>::from_json(*it, at);
        if (defaults_[K]) return detail::value_traits<V>::from_json(*defaults_[K], at);
        if constexpr (detail::is_optional_v<V>) {
            return V{};
        } else {
            throw InvalidParams("missing required parameter '" + name + "'");
        }
    }

    std::string run(detail::Services &services, Values &values) {
        if constexpr (std::is_void_v<R>) {
            call(services, values, std::make_index_sequence<L::arity>{});
            return "null";
        } else {
            return detail::to_json_text(json(call(services, values, std::make_index_sequence<L::arity>{})),
                                        "the result");
        }
    }
    template <std::size_t... I>
    decltype(auto) call(detail::Services &services, Values &values, std::index_sequence<I...>) {
        (void)services;
        (void)values;
        return std::invoke(fn_, pass<I>(services, values)...);
    }
    // The I-th argument, forwarded as F declared it (value, T&, const T&, T&&).
    template <std::size_t I>
    decltype(auto) pass(detail::Services &services, Values &values) {
        using A = std::tuple_element_t<I, Args>;
        if constexpr (detail::is_injected_v<A>) {
            (void)values;
            return static_cast<A &&>(services.template get<std::remove_cvref_t<A>>());
        } else {
            (void)services;
            return static_cast<A &&>(std::get<L::caller_index[I]>(values));
        }
    }

    static void rollback_quietly(const Session &session, const th_host_api *host, th_call *call) noexcept {
        try {
            detail::SessionAccess::end(session, false);
        } catch (...) {
            // The task's own error is the one to report; just leave a trace.
            try {
                const auto info = detail::current_exception_info();
                if (TH_HOST_HAS(host, log))
                    host->log(call, TH_LOG_ERROR, ("session rollback failed: " + info.message).c_str());
            } catch (...) {
            }
        }
    }

    std::string name_;
    F fn_;
    std::optional<std::string> doc_;
    std::vector<std::string> tags_;
    double timeout_s_ = 0;
    bool retry_safe_ = false;
    int priority_ = 0;
    std::string every_cron_, every_tz_;
    std::uint32_t retry_max_attempts_ = 1;
    Backoff backoff_ = Backoff::exponential();
    bool (*retry_on_)() noexcept = nullptr;
    std::vector<std::string> names_;             // caller parameters, in order
    std::vector<std::optional<json>> defaults_;  // parallel to names_
    std::vector<std::string> injected_names_;    // per argument; "" for caller ones
    std::string error_;                          // declaration problems (from prepare)
};

// Declares a task: `name` is what clients call (^[A-Za-z0-9_-]+$), `fn` a
// function pointer or non-generic lambda.
template <class F>
Task<std::decay_t<F>> task(std::string name, F &&fn) {
    return Task<std::decay_t<F>>(std::move(name), std::forward<F>(fn));
}

namespace detail {
template <class T>
struct is_task : std::false_type {};
template <class F>
struct is_task<Task<F>> : std::true_type {};
}  // namespace detail

}  // namespace taskhost
