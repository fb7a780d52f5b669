#include "jobs/drain_rate.hpp"

#include <algorithm>
#include <cmath>

namespace taskhost::jobs {

namespace {

constexpr uint64_t kCountMask = 0xffffffffu;

// Whole seconds of the steady clock (its epoch is boot: fits 32 bits).
uint64_t second_of(DrainRate::Clock::time_point t) {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    return static_cast<uint64_t>(std::max<int64_t>(s, 0)) & kCountMask;
}

}  // namespace

void DrainRate::count(Clock::time_point now) {
    const uint64_t second = second_of(now);
    std::atomic<uint64_t> &slot = slots_[second % kSlots];
    uint64_t old = slot.load(std::memory_order_relaxed);
    uint64_t next;
    do {
        // The same second: one more (a count that would overflow stays full);
        // an older one: this slot starts counting the new second.
        if ((old >> 32) == second) next = (old & kCountMask) == kCountMask ? old : old + 1;
        else next = (second << 32) | 1;
    } while (!slot.compare_exchange_weak(old, next, std::memory_order_relaxed));
}

std::optional<double> DrainRate::per_second(Clock::time_point now) const {
    const uint64_t current = second_of(now);
    uint64_t total = 0;
    uint64_t first = current + 1;  // the earliest second with an end
    for (const auto &slot : slots_) {
        const uint64_t v = slot.load(std::memory_order_relaxed);
        const uint64_t second = v >> 32, n = v & kCountMask;
        if (n == 0 || second > current || current - second >= static_cast<uint64_t>(kWindowS)) continue;
        total += n;
        first = std::min(first, second);
    }
    if (total == 0) return std::nullopt;
    const double since_first =
        std::chrono::duration<double>(now.time_since_epoch()).count() - static_cast<double>(first);
    return static_cast<double>(total) / std::max(1.0, since_first);
}

int DrainRate::retry_after_s(size_t queued, std::optional<double> rate) {
    const double jobs = static_cast<double>(std::max<size_t>(queued, 1));
    const double seconds = rate && *rate > 0 ? std::ceil(jobs / *rate) : jobs * kWindowS;
    return static_cast<int>(std::clamp(seconds, 1.0, static_cast<double>(kMaxRetryAfterS)));
}

}  // namespace taskhost::jobs
