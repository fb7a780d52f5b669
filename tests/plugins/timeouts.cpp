// Fixture plugin "timeouts": tasks with an SDK-declared default timeout, one
// that honours cancellation and one that ignores it.
#include <taskhost/sdk.hpp>

#include <chrono>
#include <thread>

using namespace taskhost;

namespace {

json polite_sleep(Context &context, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        context.throw_if_cancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {{"slept", seconds}};
}

// Never looks at the cancellation flag: a timeout can only mark it, and the
// worker stays busy until the function returns.
json stubborn_sleep(double seconds) {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    return {{"slept", seconds}};
}

}  // namespace

TASKHOST_PLUGIN("timeouts", "1.0.0",
                task("polite_sleep", polite_sleep)
                    .doc("Sleeps, honouring cancellation; times out after 0.3 s.")
                    .tags({"testing"})
                    .params("seconds")
                    .timeout(0.3),
                task("stubborn_sleep", stubborn_sleep)
                    .doc("Sleeps, ignoring cancellation; times out after 0.3 s.")
                    .tags({"testing"})
                    .params("seconds")
                    .timeout(0.3));
