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

// y/m/d → days since 1970-01-01 (the inverse of civil_from_days).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);                 // [0, 399]
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

inline char *put2(char *p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
    return p + 2;
}

// Reads exactly `n` digits at text[at...] into `out`.
bool digits(std::string_view text, size_t &at, size_t n, unsigned &out) {
    if (at + n > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < n; ++i) {
        const char c = text[at + i];
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<unsigned>(c - '0');
    }
    at += n;
    return true;
}

bool expect(std::string_view text, size_t &at, std::string_view any_of) {
    if (at >= text.size() || any_of.find(text[at]) == std::string_view::npos) return false;
    ++at;
    return true;
}

}  // namespace

std::optional<int64_t> parse_rfc3339(std::string_view t) {
    size_t at = 0;
    unsigned year, month, day, hour, minute, second;
    if (!digits(t, at, 4, year) || !expect(t, at, "-") || !digits(t, at, 2, month) || !expect(t, at, "-") ||
        !digits(t, at, 2, day) || !expect(t, at, "Tt ") || !digits(t, at, 2, hour) || !expect(t, at, ":") ||
        !digits(t, at, 2, minute) || !expect(t, at, ":") || !digits(t, at, 2, second))
        return std::nullopt;
    static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] || (month == 2 && day == 29 && !leap) ||
        hour > 23 || minute > 59 || second > 60)  // 60: a leap second, read as the next second
        return std::nullopt;
    int64_t micros = 0;
    if (at < t.size() && t[at] == '.') {
        ++at;
        size_t n = 0;
        for (; at < t.size() && t[at] >= '0' && t[at] <= '9'; ++at, ++n)
            if (n < 6) micros = micros * 10 + (t[at] - '0');
        if (n == 0) return std::nullopt;
        for (; n < 6; ++n) micros *= 10;
    }
    int64_t offset_s = 0;
    if (expect(t, at, "Zz")) {
    } else if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
        const int sign = t[at++] == '-' ? -1 : 1;
        unsigned oh, om;
        if (!digits(t, at, 2, oh) || !expect(t, at, ":") || !digits(t, at, 2, om) || oh > 23 || om > 59)
            return std::nullopt;
        offset_s = sign * static_cast<int64_t>(oh * 3600 + om * 60);
    } else {
        return std::nullopt;
    }
    if (at != t.size()) return std::nullopt;
    const int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s;
    return seconds * 1'000'000 + micros;
}

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
