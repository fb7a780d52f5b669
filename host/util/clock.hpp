// Wall-clock time as microseconds since the Unix epoch, and its ISO-8601 form.
#pragma once

#include <cstdint>
#include <string>

namespace taskhost {

int64_t now_us();

// "2025-11-08T10:43:01.123456Z" (always 6 fraction digits, UTC).
std::string iso8601_utc(int64_t us);

}  // namespace taskhost
