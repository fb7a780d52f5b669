// How fast jobs have been ending lately, so that a client refused by a full
// queue is told when to come back (Retry-After) instead of "in 1 s" whatever
// the backlog. Job ends are counted per second in a small ring of atomics:
// counting one is a compare-and-swap on the worker's path, no lock; reading
// the rate (only when a request is refused) sums the ring.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace taskhost::jobs {

class DrainRate {
public:
    using Clock = std::chrono::steady_clock;
    // The rate is measured over the last kWindowS seconds.
    static constexpr int kWindowS = 30;
    // Retry-After stays within [1, kMaxRetryAfterS].
    static constexpr int kMaxRetryAfterS = 300;

    // One job ended at `now`.
    void count(Clock::time_point now = Clock::now());

    // Jobs ended per second over the last kWindowS seconds, measured from the
    // start of the first second in that window in which one ended (at least
    // over 1 s), so a host that has only just got busy is not averaged with
    // its idle time. nullopt if none ended in the window.
    std::optional<double> per_second(Clock::time_point now = Clock::now()) const;

    // Seconds until `queued` jobs have drained at `rate` (per second),
    // rounded up, within [1, kMaxRetryAfterS]. Without a rate (no job ended
    // in the window: fewer than one per kWindowS seconds), kWindowS seconds
    // per queued job, within the same bounds.
    static int retry_after_s(size_t queued, std::optional<double> rate);

private:
    // More slots than seconds in the window, so that a slot is never reused
    // for a second still being read.
    static constexpr size_t kSlots = 64;
    // Each slot: the second it counts (high 32 bits, seconds of the steady
    // clock) and how many jobs ended in it (low 32 bits).
    std::array<std::atomic<uint64_t>, kSlots> slots_{};
};

}  // namespace taskhost::jobs
