// Fixture plugin "flaky": tasks that fail a given number of times and then
// succeed, for the retry tests. Attempts are counted in a file the test
// names (a job may run in any worker process, or in the host).
#include <taskhost/sdk.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

using namespace taskhost;

namespace {

class Transient : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The attempt this is (1, 2, ...), counted in `counter`.
int next_attempt(const std::string &counter) {
    int n = 0;
    std::ifstream(counter) >> n;
    std::ofstream(counter, std::ios::trunc) << ++n;
    return n;
}

json fail_then_succeed(const std::string &counter, int failures) {
    const int attempt = next_attempt(counter);
    if (attempt <= failures) throw Transient("attempt " + std::to_string(attempt) + " failed");
    return {{"attempt", attempt}};
}

// Throws a std::logic_error: not a Transient, so never retried.
json wrong_kind(const std::string &counter) {
    next_attempt(counter);
    throw std::logic_error("not transient");
}

json permanent(const std::string &counter) {
    next_attempt(counter);
    throw PermanentError("no use trying again");
}

// Sleeps past its timeout on the first `slow` attempts.
// Ends when canceled (its timeout), or after 10 s.
json slow_then_quick(Context &ctx, const std::string &counter, int slow) {
    const int attempt = next_attempt(counter);
    if (attempt <= slow)
        for (int i = 0; i < 1000 && !ctx.cancelled(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return {{"attempt", attempt}};
}

// As slow_then_quick, but stops the way most tasks do: by throwing
// taskhost::Cancelled (its task retries only Transient exceptions).
json cooperative_then_quick(Context &ctx, const std::string &counter, int slow) {
    const int attempt = next_attempt(counter);
    if (attempt <= slow)
        for (int i = 0; i < 1000; ++i) {
            ctx.throw_if_cancelled();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    return {{"attempt", attempt}};
}

// Its first attempt ignores its timeout for `stubborn_s` seconds, then fails.
json stubborn_then_quick(const std::string &counter, double stubborn_s) {
    const int attempt = next_attempt(counter);
    if (attempt == 1) {
        std::this_thread::sleep_for(std::chrono::duration<double>(stubborn_s));
        throw Transient("stubborn");
    }
    return {{"attempt", attempt}};
}

// Kills its worker process on the first `crashes` attempts.
json crash_then_succeed(const std::string &counter, int crashes) {
    const int attempt = next_attempt(counter);
    if (attempt <= crashes) std::raise(SIGKILL);
    return {{"attempt", attempt}};
}

}  // namespace

TASKHOST_PLUGIN(
    "flaky", "1.0.0",
    task("fail_then_succeed", fail_then_succeed)
        .params("counter", "failures")
        .retry(4, Backoff::exponential(0.2, 1, false))
        .retry_on<Transient>(),
    task("wrong_kind", wrong_kind).params("counter").retry(3, Backoff::fixed(0.1)).retry_on<Transient>(),
    task("permanent", permanent).params("counter").retry(3, Backoff::fixed(0.1)),
    task("no_policy", fail_then_succeed).params("counter", "failures"),
    task("slow_then_quick", slow_then_quick).params("counter", "slow").timeout(0.3).retry(2, Backoff::fixed(0.1)),
    task("cooperative_then_quick", cooperative_then_quick)
        .params("counter", "slow")
        .timeout(0.3)
        .retry(2, Backoff::fixed(0.1))
        .retry_on<Transient>(),
    task("stubborn_then_quick", stubborn_then_quick)
        .params("counter", "stubborn_s")
        .timeout(0.2)
        .retry(3, Backoff::fixed(0.1)),
    task("crash_then_succeed", crash_then_succeed).params("counter", "crashes").retry(3, Backoff::fixed(0.1)),
    task("crash_then_succeed_safe", crash_then_succeed)
        .params("counter", "crashes")
        .retry(3, Backoff::fixed(0.1))
        .retry_safe());
