// Fixture plugin "ticker", built three times for the recurring-jobs tests:
// TASKHOST_TICKER_N 1 declares "tick" every second (UTC), 2 every other
// second in Europe/Oslo, 3 no schedule at all. "tock" never declares one.
#include <taskhost/sdk.hpp>

#ifndef TASKHOST_TICKER_N
#error "define TASKHOST_TICKER_N (1, 2 or 3)"
#endif
#define TASKHOST_TICKER_STR2(n) #n
#define TASKHOST_TICKER_STR(n) TASKHOST_TICKER_STR2(n)

using namespace taskhost;

namespace {

json tick(int n) { return {{"tick", n}}; }
json tock() { return {{"tock", true}}; }

auto tick_task() {
    auto t = task("tick", tick).param("n", 1).doc("Runs on a calendar.");
#if TASKHOST_TICKER_N == 1
    t.every("* * * * * *");
#elif TASKHOST_TICKER_N == 2
    t.every("*/2 * * * * *", "Europe/Oslo");
#endif
    return t;
}

}  // namespace

TASKHOST_PLUGIN("ticker", "1.0." TASKHOST_TICKER_STR(TASKHOST_TICKER_N), tick_task(), task("tock", tock));
