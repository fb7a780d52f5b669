// Wall-clock time as microseconds since the Unix epoch, and its ISO-8601
// form; steady-clock deadlines from seconds given by people.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost {

int64_t now_us();

// "2025-11-08T10:43:01.123456Z" (always 6 fraction digits, UTC).
std::string iso8601_utc(int64_t us);

// An RFC 3339 date-time ("2026-12-04T10:00:00Z", "...T10:00:00.5+01:00";
// 't' and 'z' too, and a space for the 'T'), in µs since the epoch;
// nullopt if it is not one.
std::optional<int64_t> parse_rfc3339(std::string_view text);

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
