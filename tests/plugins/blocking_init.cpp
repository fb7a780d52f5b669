// Fixture plugin "blocking_init": its init does not return until a file
// named "taskhost-release-blocking-init-<pid>" appears in the temp folder
// (<pid>: the process running init), or 60 s have passed. A reload that
// loads it hangs in plugin code the way a wedged init would.
#include <unistd.h>

#include <taskhost/sdk.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

using taskhost::json;
using namespace taskhost;

namespace {

void init(Database &) {
    const auto release =
        std::filesystem::temp_directory_path() / ("taskhost-release-blocking-init-" + std::to_string(::getpid()));
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::error_code ec;
    while (!std::filesystem::exists(release, ec) && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

json unblocked() { return {{"loaded", true}}; }

}  // namespace

TASKHOST_PLUGIN_WITH_INIT("blocking_init", "1.0.0", init,
                          task("blocking_init_task", unblocked).doc("Callable once the plugin's init has returned."));
