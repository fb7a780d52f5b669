// The bench fixtures' trick for serving many distinct plugins from one build:
// a copy names its plugin (and tasks) after the file it was loaded from.
//
//   p017.so                         → "p017"
//   /proc/self/fd/N → memfd:3-p017.so (the host's or worker's sealed copy) → "p017"
//
// The file is found by asking the dynamic loader (dladdr) which object holds
// `symbol` (the plugin's entry point); a memfd path is followed to the
// memfd's name.
#pragma once

#include <dlfcn.h>
#include <unistd.h>

#include <string>

namespace bench_fixture {

// "…/3-p017.so" → "p017": basename, without the extension and without the
// "<digits>-" prefix the host puts on its copies; anything outside
// [A-Za-z0-9_-] becomes '_'. `fallback` if nothing is left.
inline std::string plugin_name_from_file(const void *symbol, const std::string &fallback) {
    Dl_info info{};
    std::string file = fallback;
    if (::dladdr(symbol, &info) != 0 && info.dli_fname != nullptr) file = info.dli_fname;
    if (file.rfind("/proc/self/fd/", 0) == 0) {
        // Loaded from a memfd, whose link reads "/memfd:3-p017.so (deleted)".
        char target[512];
        const ssize_t n = ::readlink(file.c_str(), target, sizeof target - 1);
        if (n > 0) {
            file.assign(target, static_cast<size_t>(n));
            if (file.rfind("/memfd:", 0) == 0) file.erase(0, 7);
            if (size_t deleted = file.rfind(" (deleted)"); deleted != std::string::npos) file.erase(deleted);
        }
    }
    if (size_t slash = file.rfind('/'); slash != std::string::npos) file.erase(0, slash + 1);
    if (size_t dot = file.find('.'); dot != std::string::npos) file.erase(dot);
    size_t digits = 0;
    while (digits < file.size() && file[digits] >= '0' && file[digits] <= '9') ++digits;
    if (digits > 0 && digits < file.size() && file[digits] == '-') file.erase(0, digits + 1);
    for (char &c : file) {
        const bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) c = '_';
    }
    return file.empty() ? fallback : file;
}

}  // namespace bench_fixture
