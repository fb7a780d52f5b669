// Waiting for something another thread finishes within microseconds (a
// group commit the caller's write is part of).
#pragma once

#include <sched.h>

#include <chrono>

namespace taskhost {

// Yields the CPU until `ready()` or `budget` has passed; true if ready.
// For a wait that usually ends within about one commit: blocking on a
// condition variable would cost the waiter a sleep and the waker a futex
// wake (on this VM an IPI as well), several microseconds each, while a
// yielding waiter lets the committing thread run and costs nothing when it
// is done. The caller blocks properly afterwards if it is not ready: this
// never replaces the wait itself.
template <class Ready>
bool yield_until(Ready &&ready, std::chrono::microseconds budget) {
    if (ready()) return true;
    const auto end = std::chrono::steady_clock::now() + budget;
    do {
        sched_yield();
        if (ready()) return true;
    } while (std::chrono::steady_clock::now() < end);
    return false;
}

// About one group commit under load on a 2-core machine.
inline constexpr std::chrono::microseconds kCommitYieldBudget{60};

}  // namespace taskhost
