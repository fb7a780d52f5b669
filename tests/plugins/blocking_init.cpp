// Fixture plugin "blocking_init": its init does not return until a file
// named "release-blocking-init" appears in the folder its private copy was
// loaded from (the host's runtime folder), or 60 s have passed. A reload that
// loads it hangs in plugin code the way a wedged init would.
#include <dlfcn.h>

#include <taskhost/sdk.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

using taskhost::json;
using namespace taskhost;

namespace {

void init(Database &) {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<void *>(&init), &info) == 0 || info.dli_fname == nullptr) return;
    const auto release = std::filesystem::path(info.dli_fname).parent_path() / "release-blocking-init";
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::error_code ec;
    while (!std::filesystem::exists(release, ec) && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

json unblocked() { return {{"loaded", true}}; }

}  // namespace

TASKHOST_PLUGIN_WITH_INIT("blocking_init", "1.0.0", init,
                          task("blocking_init_task", unblocked).doc("Callable once the plugin's init has returned."));
