// taskhost SDK internals: how a caught exception becomes (type, message,
// traceback frames) for the host. Nothing here crosses the C boundary; only
// strings and th_frame records do.
#pragma once

#include <taskhost/abi.h>
#include <taskhost/errors.hpp>

#include <taskhost/detail/throw_site.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

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
// ("std::__cxx11::basic_string", "failure[abi:cxx11]") and std::string in
// full; people don't.
inline std::string tidy_type_name(std::string name) {
    for (std::string_view noise : {std::string_view("__cxx11::"), std::string_view("[abi:cxx11]")}) {
        for (auto pos = name.find(noise); pos != std::string::npos; pos = name.find(noise, pos))
            name.erase(pos, noise.size());
    }
    constexpr std::string_view full = "std::basic_string<char, std::char_traits<char>, std::allocator<char> >";
    for (auto pos = name.find(full); pos != std::string::npos; pos = name.find(full, pos))
        name.replace(pos, full.size(), "std::string");
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

// The thrown object being handled. Must be called from inside a catch block.
// Both libstdc++ and libc++ keep exactly that address in an exception_ptr.
inline const void *current_exception_object() noexcept {
    const std::exception_ptr current = std::current_exception();
    static_assert(sizeof current == sizeof(void *), "exception_ptr is expected to hold only the object's address");
    const void *object = nullptr;
    std::memcpy(static_cast<void *>(&object), static_cast<const void *>(&current), sizeof object);
    return object;
}

// A frame as the ABI carries it (th_frame), owning its strings.
struct ModuleFrame {
    std::string module;    // the loader's name for the module
    std::string build_id;  // hex, or empty
    std::uint64_t offset = 0;
    std::uintptr_t base = 0;  // load bias: tells modules apart
};

struct ModuleQuery {
    explicit ModuleQuery(std::uintptr_t a) : address(a) {}
    std::uintptr_t address;
    bool found = false;
    std::uintptr_t base = 0;
    std::string name, build_id;
};

inline std::string build_id_of(const dl_phdr_info &info) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < info.dlpi_phnum; ++i) {
        const ElfW(Phdr) &ph = info.dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const char *p = reinterpret_cast<const char *>(info.dlpi_addr + ph.p_vaddr);
        const char *end = p + ph.p_memsz;
        const auto align4 = [](std::size_t n) { return (n + 3) & ~std::size_t{3}; };
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const auto *note = reinterpret_cast<const ElfW(Nhdr) *>(p);
            const char *name = p + sizeof *note;
            const char *desc = name + align4(note->n_namesz);
            if (desc + note->n_descsz > end) break;
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
                std::string out;
                for (std::size_t k = 0; k < note->n_descsz; ++k) {
                    const auto byte = static_cast<unsigned char>(desc[k]);
                    out += digits[byte >> 4];
                    out += digits[byte & 15];
                }
                return out;
            }
            p = desc + align4(note->n_descsz);
        }
    }
    return {};
}

inline int find_module_of(dl_phdr_info *info, std::size_t, void *arg) {
    auto *query = static_cast<ModuleQuery *>(arg);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr) &ph = info->dlpi_phdr[i];
        const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
        if (ph.p_type != PT_LOAD || query->address < start || query->address - start >= ph.p_memsz) continue;
        query->found = true;
        query->base = info->dlpi_addr;
        if (info->dlpi_name != nullptr) query->name = info->dlpi_name;
        query->build_id = build_id_of(*info);
        return 1;
    }
    return 0;
}

// Module, build-id and link-time offset of each return address. The offset
// is of `address - 1`, inside the call instruction: after a call that does
// not return (a throw) the return address may already be the next function.
inline std::vector<ModuleFrame> locate_frames(void *const *frames, int count) {
    std::vector<ModuleFrame> out;
    out.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        ModuleQuery query{reinterpret_cast<std::uintptr_t>(frames[i]) - 1};
        ::dl_iterate_phdr(&find_module_of, &query);
        ModuleFrame frame;
        if (query.found) {
            frame.base = query.base;
            frame.offset = query.address - query.base;
            frame.build_id = std::move(query.build_id);
            frame.module = std::move(query.name);
            Dl_info dl{};
            if (frame.module.empty() && ::dladdr(frames[i], &dl) != 0 && dl.dli_fname != nullptr)
                frame.module = dl.dli_fname;  // the program itself has no name in the list
        } else {
            frame.offset = query.address;  // not in any module (JIT code?): the address
        }
        out.push_back(std::move(frame));
    }
    return out;
}

// Drops the frames below the outermost one in this plugin (the SDK's invoke
// entry): they are the host's.
inline void trim_to_own_module(std::vector<ModuleFrame> &frames) {
    ModuleQuery own{reinterpret_cast<std::uintptr_t>(&capture_stack)};
    ::dl_iterate_phdr(&find_module_of, &own);
    if (!own.found) return;
    for (std::size_t i = frames.size(); i-- > 0;) {
        if (frames[i].base == own.base && !frames[i].module.empty()) {
            frames.resize(i + 1);
            return;
        }
    }
}

inline std::string_view base_name(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The traceback as text, for a host without set_error_frames: module file,
// build-id and offset per frame, which is what addr2line needs. The host's
// own rendering (with function, file and line) has the same layout.
inline std::string format_traceback(const ExceptionInfo &info, const std::vector<ModuleFrame> &frames,
                                    bool at_throw) {
    std::string out = at_throw ? "Traceback (innermost first, captured where it was thrown)"
                               : "Traceback (innermost first, captured where the plugin caught it: the throw "
                                 "site was not recorded)";
    if (!frames.empty()) {
        const ModuleFrame &outer = frames.back();  // the SDK's invoke entry: this plugin
        out += ", plugin ";
        out += base_name(outer.module);
        if (!outer.build_id.empty()) out += " build-id " + outer.build_id;
    }
    out += ":\n";
    for (std::size_t i = 0; i < frames.size(); ++i) {
        out += "  #" + std::to_string(i) + ' ';
        if (frames[i].module.empty()) out += hex(frames[i].offset);
        else out.append(base_name(frames[i].module)).append("+").append(hex(frames[i].offset));
        out += '\n';
    }
    out += info.type;
    out += ": ";
    out += info.message;
    return out;
}

}  // namespace taskhost::detail
