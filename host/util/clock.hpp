// Wall-clock time as microseconds since the Unix epoch, and its ISO-8601
// form; steady-clock deadlines from seconds given by people.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace taskhost {

int64_t now_us();

// "2025-11-08T10:43:01.123456Z" (always 6 fraction digits, UTC).
std::string iso8601_utc(int64_t us);

// A steady-clock duration of `seconds` (fractions kept to the clock's tick).
// Saturates at +-100 years (NaN: +100 years): beyond ~292 years the clock's
// 64-bit nanoseconds, and any deadline from now, would wrap round.
inline std::chrono::steady_clock::duration seconds_duration(double seconds) {
    constexpr double kLimit = 100.0 * 365 * 86400;
    if (!(seconds < kLimit)) seconds = kLimit;
    if (seconds < -kLimit) seconds = -kLimit;
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}
// The steady-clock time `seconds` from now.
inline std::chrono::steady_clock::time_point deadline_after(double seconds) {
    return std::chrono::steady_clock::now() + seconds_duration(seconds);
}

}  // namespace taskhost
