// Fixture plugin "versioned", built twice (TASKHOST_VERSIONED_N = 1 or 2) for
// the hot-reload tests: same plugin and task names, different answers.
#include <taskhost/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#ifndef TASKHOST_VERSIONED_N
#error "define TASKHOST_VERSIONED_N (1 or 2)"
#endif
#define TASKHOST_VERSIONED_STR2(n) #n
#define TASKHOST_VERSIONED_STR(n) TASKHOST_VERSIONED_STR2(n)

using taskhost::json;
using namespace taskhost;

namespace {

constexpr int version = TASKHOST_VERSIONED_N;

json which_version() { return {{"version", version}}; }

// Keeps a job in flight across a reload; cancellable within ~50 ms.
json slow_version(Context &context, double seconds) {
    if (!(seconds >= 0)) throw std::invalid_argument("seconds must be >= 0");
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (;;) {
        if (context.cancelled()) throw Cancelled();
        const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
        if (elapsed >= seconds) break;
        std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.05, seconds - elapsed)));
    }
    return {{"version", version}};
}

}  // namespace

TASKHOST_PLUGIN(
    "versioned", TASKHOST_VERSIONED_STR(TASKHOST_VERSIONED_N) ".0.0",
    task("which_version", which_version).doc("Returns which build of the plugin answered.").tags({"versioned"}),
    task("slow_version", slow_version)
        .doc("Sleeps for the given seconds, then returns which build answered.")
        .tags({"versioned"})
        .params("seconds"));
