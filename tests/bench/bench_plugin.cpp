// Fixture for the `plugins` scenario of taskhost-bench: one build, copied
// under many file names. Its plugin name and its ten task names come from the
// file it was loaded from, so 200 copies serve 2,000 distinct tasks:
//
//   p017.so                         → plugin "p017", tasks p017_t0 … p017_t9
//   /proc/self/fd/N → memfd:3-p017.so (the host's sealed copy) → the same names
//
// The names are computed when the host first calls the entry point, by
// asking the dynamic loader (dladdr) which file holds that entry point; a
// memfd path is followed to the memfd's name.
#include <dlfcn.h>
#include <unistd.h>

#include <string>

#include <taskhost/sdk.hpp>

using taskhost::json;
using namespace taskhost;

extern "C" TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void);

namespace {

// "…/3-p017.so" → "p017": basename, without the extension and without the
// "<digits>-" prefix the host puts on its copies; anything outside
// [A-Za-z0-9_-] becomes '_'.
std::string name_from_file() {
    Dl_info info{};
    std::string file = "bench";
    if (::dladdr(reinterpret_cast<void *>(&taskhost_plugin_v1), &info) != 0 && info.dli_fname != nullptr)
        file = info.dli_fname;
    if (file.rfind("/proc/self/fd/", 0) == 0) {
        // Loaded from the host's memfd, whose link reads "/memfd:3-p017.so (deleted)".
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
    return file.empty() ? std::string("bench") : file;
}

const std::string &prefix() {
    static const std::string p = name_from_file();
    return p;
}

template <int K>
json bench_task(int x) {
    return {{"task", prefix() + "_t" + std::to_string(K)}, {"x", x}};
}

template <int K>
auto make_task() {
    return task(prefix() + "_t" + std::to_string(K), bench_task<K>)
        .doc("Benchmark fixture task " + std::to_string(K) + " of plugin " + prefix() + ".")
        .tags({"bench", "t" + std::to_string(K)})
        .param("x", 0);
}

}  // namespace

TASKHOST_PLUGIN(prefix(), "1.0.0", make_task<0>(), make_task<1>(), make_task<2>(), make_task<3>(), make_task<4>(),
                make_task<5>(), make_task<6>(), make_task<7>(), make_task<8>(), make_task<9>());
