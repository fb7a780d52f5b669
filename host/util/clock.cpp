#include "util/clock.hpp"

#include <chrono>

namespace taskhost {

int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {

// Days since 1970-01-01 → proleptic Gregorian y/m/d (Hinnant's civil-from-days
// arithmetic): no libc, no locale, no time zone database.
void civil_from_days(int64_t z, int64_t &y, unsigned &m, unsigned &d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);                // [0, 146096]
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
    const unsigned mp = (5 * doy + 2) / 153;                                     // [0, 11]
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

inline char *put2(char *p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
    return p + 2;
}

}  // namespace

std::string iso8601_utc(int64_t us) {
    constexpr int64_t kUsPerDay = 86400LL * 1000000;
    // Floor division so times before 1970 still land on the right day.
    int64_t days = us / kUsPerDay;
    int64_t rem = us % kUsPerDay;
    if (rem < 0) {
        rem += kUsPerDay;
        --days;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, year, month, day);
    const auto secs = static_cast<unsigned>(rem / 1000000);
    auto frac = static_cast<unsigned>(rem % 1000000);

    char buf[40];
    char *p = buf;
    if (year < 0 || year > 9999) {
        // Outside ISO's 4-digit range: still readable, rarely if ever hit.
        std::string y = std::to_string(year);
        for (char c : y) *p++ = c;
    } else {
        auto yy = static_cast<unsigned>(year);
        p = put2(p, yy / 100);
        p = put2(p, yy % 100);
    }
    *p++ = '-';
    p = put2(p, month);
    *p++ = '-';
    p = put2(p, day);
    *p++ = 'T';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
    *p++ = '.';
    for (int i = 5; i >= 0; --i) {
        p[i] = static_cast<char>('0' + frac % 10);
        frac /= 10;
    }
    p += 6;
    *p++ = 'Z';
    return std::string(buf, static_cast<size_t>(p - buf));
}

}  // namespace taskhost
