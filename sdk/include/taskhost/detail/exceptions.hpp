// taskhost SDK internals: how a caught exception becomes (type, message,
// traceback) text for the host. Nothing here crosses the C boundary; only the
// strings do.
#pragma once

#include <taskhost/abi.h>
#include <taskhost/errors.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>

namespace taskhost::detail {

inline const char *status_name(th_status s) noexcept {
    switch (s) {
        case TH_OK: return "TH_OK";
        case TH_ERROR: return "TH_ERROR";
        case TH_NOT_FOUND: return "TH_NOT_FOUND";
        case TH_INVALID: return "TH_INVALID";
        case TH_CANCELLED: return "TH_CANCELLED";
        case TH_UNSUPPORTED: return "TH_UNSUPPORTED";
    }
    return "unknown status";
}

// Writes text into a sink owned by the other side; tolerates a null sink.
inline void sink_write(th_sink *sink, std::string_view text) noexcept {
    if (sink != nullptr && sink->write != nullptr && !text.empty()) sink->write(sink->opaque, text.data(), text.size());
}

// libstdc++ spells some std types with inline-namespace noise
// ("std::__cxx11::basic_string", "failure[abi:cxx11]"); people don't.
inline std::string tidy_type_name(std::string name) {
    for (std::string_view noise : {std::string_view("__cxx11::"), std::string_view("[abi:cxx11]")}) {
        for (auto pos = name.find(noise); pos != std::string::npos; pos = name.find(noise, pos))
            name.erase(pos, noise.size());
    }
    return name;
}

inline std::string demangle(const char *mangled) {
    if (mangled == nullptr) return "unknown";
    int status = 0;
    char *plain = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string out = (status == 0 && plain != nullptr) ? std::string(plain) : std::string(mangled);
    std::free(plain);  // allocated by __cxa_demangle with malloc
    return tidy_type_name(std::move(out));
}

struct ExceptionInfo {
    std::string type;
    std::string message;
};

// Must be called from inside a catch block.
inline ExceptionInfo current_exception_info() {
    ExceptionInfo info;
    const std::type_info *type = abi::__cxa_current_exception_type();
    info.type = type != nullptr ? demangle(type->name()) : std::string("unknown");
    try {
        throw;
    } catch (const std::exception &e) {
        info.message = e.what();
    } catch (const std::string &s) {
        info.message = s;
    } catch (const char *s) {
        info.message = s != nullptr ? s : "unknown exception";
    } catch (...) {
        info.message = "unknown exception";
    }
    return info;
}

inline std::string hex(std::uintptr_t v) {
    char buf[2 + 2 * sizeof v + 1];
    std::snprintf(buf, sizeof buf, "0x%jx", static_cast<std::uintmax_t>(v));
    return buf;
}

// The stack of the calling thread as text, innermost first. Plugins hide
// their symbols, so their frames show as "file.so+offset" (feed the offset
// to addr2line); exported symbols are demangled.
[[gnu::noinline]] inline std::string backtrace_text(int skip = 0) {
    void *frames[48];
    const int n = ::backtrace(frames, 48);
    std::string out;
    for (int i = skip + 1; i < n; ++i) {  // +1: this function itself
        const auto addr = reinterpret_cast<std::uintptr_t>(frames[i]);
        out += "  #" + std::to_string(i - skip - 1) + ' ';
        Dl_info dl{};
        if (::dladdr(frames[i], &dl) != 0 && dl.dli_fname != nullptr) {
            const char *slash = std::strrchr(dl.dli_fname, '/');
            const char *file = slash != nullptr ? slash + 1 : dl.dli_fname;
            if (dl.dli_sname != nullptr && dl.dli_saddr != nullptr) {
                out +=
                    demangle(dl.dli_sname) + '+' + hex(addr - reinterpret_cast<std::uintptr_t>(dl.dli_saddr)) + " in ";
            }
            out += std::string(file) + '+' + hex(addr - reinterpret_cast<std::uintptr_t>(dl.dli_fbase));
        } else {
            out += hex(addr);
        }
        out += '\n';
    }
    return out;
}

// Python-like layout so it reads like the guide's "Traceback ..." text. The
// stack is the one at the SDK's catch site: the throw site is already
// unwound by then.
inline std::string format_traceback(std::string_view task, const ExceptionInfo &info, const std::string &frames) {
    std::string out = "Traceback (innermost first, captured where task '";
    out += task;
    out += "' was caught):\n";
    out += frames;
    out += info.type;
    out += ": ";
    out += info.message;
    return out;
}

}  // namespace taskhost::detail
