// Fixture plugins "load_<fault>": each misbehaves while it is being loaded,
// the way chosen by one TASKHOST_LOAD_FAULT_<fault> definition. In the host
// these would crash it, or hang it with the loader lock held; the probe
// child must take the blow instead.
#include <taskhost/sdk.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

using namespace taskhost;

namespace {

[[noreturn, maybe_unused]] void sleep_forever() {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// The pointer itself is volatile, so the compiler cannot prove the store
// faults and drop it; UBSan would stop the process before the fault.
[[maybe_unused]] __attribute__((no_sanitize("undefined"))) void segfault() {
    static int *volatile nowhere = nullptr;
    *nowhere = 1;
}

struct StaticInitializer {
    StaticInitializer() {
#if defined(TASKHOST_LOAD_FAULT_static_segfault)
        segfault();
#elif defined(TASKHOST_LOAD_FAULT_static_throw)
        throw std::runtime_error("thrown by a static initializer");
#elif defined(TASKHOST_LOAD_FAULT_static_hang)
        sleep_forever();
#elif defined(TASKHOST_LOAD_FAULT_static_says_ok)
        // Prints what a passing probe reports, then leaves: the report is
        // not on stdout, so this must not pass for one.
        std::fputs("ok\n", stdout);
        std::fflush(stdout);
        ::_exit(0);
#endif
    }
} static_initializer;

void init(Database &) {
#if defined(TASKHOST_LOAD_FAULT_init_hang)
    sleep_forever();
#elif defined(TASKHOST_LOAD_FAULT_init_exit)
    std::exit(0);
#endif
}

json harmless() { return {{"ran", true}}; }

}  // namespace

TASKHOST_PLUGIN_WITH_INIT("load_faults", "1.0.0", init, task("load_fault_task", harmless));
