#include "app/probe_child.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <taskhost/abi.h>

#include "exec/in_process.hpp"
#include "plugins/descriptor.hpp"
#include "plugins/probe.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace taskhost::app {

namespace {

void say(std::string line) {
    for (char &c : line)
        if (c == '\n' || c == '\r') c = ' ';  // one line each: a message cannot pass for another line
    const std::string text = line + "\n";
    size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(plugins::probe_report_fd, text.data() + done, text.size() - done);
        if (n <= 0) return;
        done += static_cast<size_t>(n);
    }
}

// Leaves without running the plugin's static destructors or shutdown():
// the probe is about loading, and the host runs them for real.
[[noreturn]] void leave(const std::string &last_line) {
    say(last_line);
    ::_exit(0);
}

}  // namespace

bool is_probe_child(int argc, char **argv) {
    return argc == 4 && std::strcmp(argv[1], plugins::probe_mode_argument) == 0;
}

int run_probe_child(int, char **argv) {
    // A host that dies or gives up on a stuck reload takes its trial with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 1;  // it went before that took effect
    // Nothing of the host's but the image and the report, and neither for
    // processes the plugin might start.
    ::close_range(plugins::probe_report_fd + 1, ~0U, 0);
    ::fcntl(plugins::probe_image_fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(plugins::probe_report_fd, F_SETFD, FD_CLOEXEC);
    say("started");
    const std::string file = argv[3];
    const std::string path = std::string("/proc/self/fd/") + argv[2];
    void *library = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char *why = ::dlerror();
        leave(std::string("refused not a loadable shared library: ") + (why ? why : "dlopen failed"));
    }
    say("loaded");
    using Entry = const th_plugin_desc *(*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(library, TH_PLUGIN_ENTRY_NAME));
    if (entry == nullptr)
        leave(std::string("refused no entry symbol ") + TH_PLUGIN_ENTRY_NAME + ": not a taskhost plugin");
    // The host's own reading of the descriptor: the same verdicts as a load.
    Result<std::unique_ptr<const plugins::Descriptor>> descriptor = plugins::read_descriptor(entry());
    if (!descriptor) leave("refused " + descriptor.error().message);
    const th_plugin_desc *desc = &(*descriptor)->plugin();
    if (desc->init != nullptr) {
        say("init");
        store::SqliteStore scratch(store::SqliteStore::Options{});
        exec::InProcessExecutor::Options one_worker;
        one_worker.workers = 1;
        exec::InProcessExecutor executor(scratch, one_worker);
        if (Result<void> init = executor.run_init(*desc, file, ""); !init)
            leave("refused init failed: " + init.error().message);
    }
    // What the host serves this version by when it does not map it itself.
    say(std::string(plugins::probe_descriptor_prefix) + plugins::descriptor_to_json(**descriptor));
    leave("ok");
}

}  // namespace taskhost::app
