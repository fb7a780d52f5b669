// taskhost SDK internals: the stack of an exception where it was thrown.
//
// By the time the SDK catches what a task threw, the throw site is unwound.
// So TASKHOST_PLUGIN also defines, in the plugin only, a __cxa_throw that
// records the raw return addresses (no symbols: a throw the task catches
// itself stays cheap) in a small per-thread ring keyed by the thrown object,
// then hands the exception to the C++ runtime's own __cxa_throw. The
// definition is hidden, so only throw expressions compiled into this plugin
// reach it: the host and other plugins never see it.
//
// libstdc++ throws its common exceptions (std::vector::at, reserve, stoi,
// std::function) from helpers such as std::__throw_out_of_range_fmt that live
// in libstdc++.so, where no hook reaches. The plugin also defines hidden
// copies of those helpers that throw the same exception from the plugin, so
// the caller's frames are recorded too. Throws entirely inside a library
// (std::string::at, iostreams, another .so) are not recorded: the SDK then
// falls back to the stack where it caught them, and says so.
//
// Define TASKHOST_NO_THROW_HOOKS to leave all of this out (a plugin linking
// libstdc++ statically, say, where the runtime's definitions would clash).
#pragma once

#include <dlfcn.h>
#include <unwind.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iterator>
#include <new>
#include <stdexcept>
#include <typeinfo>

namespace taskhost::detail {

inline constexpr int max_thrown_frames = 32;

// One throw: the exception object it threw and the return addresses above
// it, innermost first, without the hook's own frames.
struct ThrowRecord {
    const void *object;
    const std::type_info *type;
    int count;
    void *frames[max_thrown_frames];
};

// The last few throws of this thread: a destructor or a nested try may throw
// (and catch) while another exception is on its way out.
struct ThrowRing {
    ThrowRecord records[4];
    unsigned next;
    int helper_frames;  // frames of a std::__throw_* copy to leave out of the next record
};

constinit inline thread_local ThrowRing throw_ring{};

struct StackWalk {
    void **frames;
    int count;
    int max;
    int skip;
};

inline _Unwind_Reason_Code collect_frame(_Unwind_Context *context, void *arg) {
    auto *walk = static_cast<StackWalk *>(arg);
    const _Unwind_Ptr ip = _Unwind_GetIP(context);
    if (ip == 0) return _URC_END_OF_STACK;
    if (walk->skip > 0) {
        --walk->skip;
        return _URC_NO_REASON;
    }
    walk->frames[walk->count++] = reinterpret_cast<void *>(ip);
    return walk->count == walk->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// Return addresses of the caller's caller and above, innermost first.
// _Unwind_Backtrace, not backtrace(): sanitizers intercept the latter and
// would add a frame of their own.
[[gnu::noinline]] inline int capture_stack(void **frames, int max, int skip) noexcept {
    StackWalk walk{frames, 0, max, skip + 1};  // +1: this function
    _Unwind_Backtrace(&collect_frame, &walk);
    return walk.count;
}

// Called by the plugin's __cxa_throw, which it leaves out with itself.
[[gnu::noinline]] inline void record_throw(const void *object, const std::type_info *type) noexcept {
    ThrowRing &ring = throw_ring;
    ThrowRecord &record = ring.records[ring.next++ % std::size(ring.records)];
    record.object = object;
    record.type = type;
    record.count = capture_stack(record.frames, max_thrown_frames, 2 + ring.helper_frames);
    ring.helper_frames = 0;
}

// The record of the throw of `object` (of `type`) on this thread, if any.
inline const ThrowRecord *find_throw(const void *object, const std::type_info *type) noexcept {
    if (object == nullptr || type == nullptr) return nullptr;
    ThrowRing &ring = throw_ring;
    for (unsigned i = 1; i <= std::size(ring.records); ++i) {  // newest first
        const ThrowRecord &record = ring.records[(ring.next - i) % std::size(ring.records)];
        if (record.object == object && record.type != nullptr && *record.type == *type) return &record;
    }
    return nullptr;
}

// Forgets this thread's throws. Called as a task starts: an object address
// recorded by an earlier call may be reused by an exception no hook saw.
inline void forget_throws() noexcept {
    for (ThrowRecord &record : throw_ring.records) record.object = nullptr;
}

using cxa_throw_fn = void (*)(void *, std::type_info *, void (*)(void *));

// The C++ runtime's __cxa_throw (or a sanitizer's wrapper of it): the
// plugin's own is local, so the global lookup never finds it.
inline cxa_throw_fn runtime_cxa_throw() noexcept {
    static const auto fn = reinterpret_cast<cxa_throw_fn>(::dlsym(RTLD_DEFAULT, "__cxa_throw"));
    if (fn == nullptr) {
        std::fputs("taskhost plugin: the C++ runtime's __cxa_throw was not found\n", stderr);
        std::abort();
    }
    return fn;
}

// Throws `e` from a std::__throw_* copy, whose own frame is left out.
// `e` is built by the caller first: were its construction to throw, the
// count would be left for an unrelated throw.
template <class E>
[[noreturn, gnu::always_inline]] inline void throw_for_std_helper(const E &e) {
    throw_ring.helper_frames = 1;
    throw e;
}

}  // namespace taskhost::detail

#if defined(TASKHOST_NO_THROW_HOOKS)
#define TASKHOST_DETAIL_THROW_HOOKS
#else
// A hidden copy of libstdc++'s std::__throw_<NAME>(const char *), by its
// mangled name (the C++ name is libstdc++'s, declared with default visibility).
#define TASKHOST_DETAIL_STD_THROW_WHAT(NAME, MANGLED, TYPE)                                                 \
    extern "C" [[noreturn, gnu::visibility("hidden"), gnu::cold]] void taskhost_detail_throw_##NAME(       \
        const char *what) __asm__(MANGLED);                                                                \
    extern "C" void taskhost_detail_throw_##NAME(const char *what) {                                       \
        ::taskhost::detail::throw_for_std_helper(TYPE(what));                                              \
    }
#define TASKHOST_DETAIL_STD_THROW_NONE(NAME, MANGLED, TYPE)                                                 \
    extern "C" [[noreturn, gnu::visibility("hidden"), gnu::cold]] void taskhost_detail_throw_##NAME(void) \
        __asm__(MANGLED);                                                                                  \
    extern "C" void taskhost_detail_throw_##NAME(void) { ::taskhost::detail::throw_for_std_helper(TYPE()); }

// Expanded once per plugin by TASKHOST_PLUGIN. __cxa_throw is defined under
// its assembler name (the compiler and <cxxabi.h> each declare it their own
// way) and hidden: out of the dynamic table, the plugin's throws bind to it
// at link time.
#define TASKHOST_DETAIL_THROW_HOOKS                                                                         \
    extern "C" [[noreturn, gnu::visibility("hidden")]] void taskhost_detail_cxa_throw(                     \
        void *object, ::std::type_info *type, void (*destroy)(void *)) __asm__("__cxa_throw");             \
    extern "C" void taskhost_detail_cxa_throw(void *object, ::std::type_info *type, void (*destroy)(void *)) { \
        ::taskhost::detail::record_throw(object, type);                                                     \
        ::taskhost::detail::runtime_cxa_throw()(object, type, destroy);                                     \
        __builtin_unreachable();                                                                            \
    }                                                                                                       \
    extern "C" [[noreturn, gnu::visibility("hidden"), gnu::cold, gnu::format(printf, 1, 2)]] void          \
    taskhost_detail_throw_out_of_range_fmt(const char *format, ...) __asm__("_ZSt24__throw_out_of_range_fmtPKcz"); \
    extern "C" void taskhost_detail_throw_out_of_range_fmt(const char *format, ...) {                       \
        /* libstdc++ formats with %s, %zu and %lu only, as vsnprintf does. */                               \
        char what[512];                                                                                     \
        std::va_list args;                                                                                  \
        va_start(args, format);                                                                             \
        std::vsnprintf(what, sizeof what, format, args);                                                    \
        va_end(args);                                                                                       \
        ::taskhost::detail::throw_for_std_helper(::std::out_of_range(what));                                \
    }                                                                                                       \
    TASKHOST_DETAIL_STD_THROW_WHAT(out_of_range, "_ZSt20__throw_out_of_rangePKc", ::std::out_of_range)      \
    TASKHOST_DETAIL_STD_THROW_WHAT(length_error, "_ZSt20__throw_length_errorPKc", ::std::length_error)      \
    TASKHOST_DETAIL_STD_THROW_WHAT(invalid_argument, "_ZSt24__throw_invalid_argumentPKc",                   \
                                   ::std::invalid_argument)                                                 \
    TASKHOST_DETAIL_STD_THROW_WHAT(logic_error, "_ZSt19__throw_logic_errorPKc", ::std::logic_error)         \
    TASKHOST_DETAIL_STD_THROW_WHAT(domain_error, "_ZSt20__throw_domain_errorPKc", ::std::domain_error)      \
    TASKHOST_DETAIL_STD_THROW_WHAT(runtime_error, "_ZSt21__throw_runtime_errorPKc", ::std::runtime_error)   \
    TASKHOST_DETAIL_STD_THROW_WHAT(range_error, "_ZSt19__throw_range_errorPKc", ::std::range_error)         \
    TASKHOST_DETAIL_STD_THROW_WHAT(overflow_error, "_ZSt22__throw_overflow_errorPKc", ::std::overflow_error) \
    TASKHOST_DETAIL_STD_THROW_WHAT(underflow_error, "_ZSt23__throw_underflow_errorPKc",                     \
                                   ::std::underflow_error)                                                  \
    TASKHOST_DETAIL_STD_THROW_NONE(bad_alloc, "_ZSt17__throw_bad_allocv", ::std::bad_alloc)                 \
    TASKHOST_DETAIL_STD_THROW_NONE(bad_array_new_length, "_ZSt28__throw_bad_array_new_lengthv",             \
                                   ::std::bad_array_new_length)                                             \
    TASKHOST_DETAIL_STD_THROW_NONE(bad_function_call, "_ZSt25__throw_bad_function_callv",                   \
                                   ::std::bad_function_call)                                                \
    TASKHOST_DETAIL_STD_THROW_NONE(bad_cast, "_ZSt16__throw_bad_castv", ::std::bad_cast)
#endif
