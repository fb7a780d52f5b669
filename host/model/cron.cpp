#include "model/cron.hpp"

#include <date/tz.h>
#include <algorithm>
#include <bit>
#include <chrono>
#include <exception>
#include <vector>

namespace taskhost::model {

namespace {

using std::chrono::seconds;

// ---- parsing -------------------------------------------------------------------------------------------------------

struct Field {
    const char *name;
    int min, max;  // the values a number may take
    int top;       // where '*' and n/step end: day-of-week stops at 6 so Sunday (0 = 7) counts once
    const char *const *names = nullptr;  // three-letter names of the values from `min` up, lowercase
    const char *name_kind = nullptr;     // "month name", "day name"
};

constexpr const char *kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char *kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr Field kSecond{"second", 0, 59, 59};
constexpr Field kMinute{"minute", 0, 59, 59};
constexpr Field kHour{"hour", 0, 23, 23};
constexpr Field kDayOfMonth{"day-of-month", 1, 31, 31};
constexpr Field kMonth{"month", 1, 12, 12, kMonthNames, "month name"};
constexpr Field kDayOfWeek{"day-of-week", 0, 7, 6, kDayNames, "day name"};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view text) {
    std::string out(text);
    for (char &c : out) c = lower(c);
    return out;
}

std::string_view trim_spaces(std::string_view text) {
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    return text;
}

// The fields of an expression, split at runs of white space.
std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_space(text[i])) ++i;
        const size_t start = i;
        while (i < text.size() && !is_space(text[i])) ++i;
        if (i > start) out.push_back(text.substr(start, i - start));
    }
    return out;
}

Error field_error(const Field &f, const std::string &problem) {
    return fail(ErrorKind::invalid, std::string("cron field '") + f.name + "': " + problem);
}

// Digits only, no sign; nullopt when not. Saturates (at a value out of
// every field's range) rather than overflow.
std::optional<int> number(std::string_view text) {
    if (text.empty()) return std::nullopt;
    int n = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        n = std::min(n * 10 + (c - '0'), 1'000'000);
    }
    return n;
}

// One value of a field: a number in range or, where the field has them, a name.
Result<int> parse_value(std::string_view token, std::string_view item, const Field &f) {
    if (token.empty()) return field_error(f, "'" + std::string(item) + "' is not a valid item");
    if (const auto n = number(token)) {
        if (*n < f.min || *n > f.max)
            return field_error(
                f, std::string(token) + " is out of range " + std::to_string(f.min) + "-" + std::to_string(f.max));
        return *n;
    }
    if (f.names) {
        const std::string name = lowercase(token);
        for (int v = f.min; v <= f.top; ++v)
            if (name == f.names[v - f.min]) return v;
        return field_error(f, "'" + std::string(token) + "' is not a number or a " + f.name_kind);
    }
    return field_error(f, "'" + std::string(token) + "' is not a number");
}

// One comma-separated item: *, n, a-b, each with an optional /step.
Result<uint64_t> parse_item(std::string_view item, const Field &f) {
    const size_t slash = item.find('/');
    const std::string_view range = item.substr(0, slash);
    int step = 1;
    if (slash != std::string_view::npos) {
        const std::string_view text = item.substr(slash + 1);
        const int count = f.top - f.min + 1;
        const auto n = number(text);
        if (!n) return field_error(f, "step '" + std::string(text) + "' is not a number");
        if (*n < 1 || *n > count)
            return field_error(f, "step " + std::string(text) + " is out of range 1-" + std::to_string(count));
        step = *n;
    }
    int lo = f.min, hi = f.top;
    if (range != "*") {
        const size_t dash = range.find('-');
        if (dash != std::string_view::npos && range.find('-', dash + 1) != std::string_view::npos)
            return field_error(f, "'" + std::string(item) + "' is not a valid item");
        auto first = parse_value(range.substr(0, dash), item, f);
        if (!first) return std::move(first).error();
        lo = *first;
        if (dash != std::string_view::npos) {
            auto last = parse_value(range.substr(dash + 1), item, f);
            if (!last) return std::move(last).error();
            hi = *last;
            if (hi < lo) return field_error(f, "range " + std::string(range) + " runs backwards");
        } else {
            hi = slash == std::string_view::npos ? lo : std::max(lo, f.top);  // n alone; n/step runs to the top
        }
    }
    uint64_t mask = 0;
    for (int v = lo; v <= hi; v += step) mask |= uint64_t{1} << (v % (f.top + 1));  // day-of-week 7 is 0
    return mask;
}

Result<uint64_t> parse_field(std::string_view text, const Field &f) {
    uint64_t mask = 0;
    size_t start = 0;
    while (true) {
        const size_t comma = text.find(',', start);
        const std::string_view item = text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
        if (item.empty()) return field_error(f, "'" + std::string(text) + "' has an empty list item");
        auto bits = parse_item(item, f);
        if (!bits) return std::move(bits).error();
        mask |= *bits;
        if (comma == std::string_view::npos) return mask;
        start = comma + 1;
    }
}

// The macros, as the five fields they stand for.
std::optional<std::string_view> expand_macro(std::string_view name) {
    const std::string m = lowercase(name);
    if (m == "@yearly" || m == "@annually") return "0 0 1 1 *";
    if (m == "@monthly") return "0 0 1 * *";
    if (m == "@weekly") return "0 0 * * 0";
    if (m == "@daily" || m == "@midnight") return "0 0 * * *";
    if (m == "@hourly") return "0 * * * *";
    return std::nullopt;
}

// ---- time ----------------------------------------------------------------------------------------------------------

// The years searched: date's calendar ends at 32767, and a year that far
// out is a mistake, not a schedule.
constexpr int kFirstYear = 1, kLastYear = 9999;
// The calendar (month lengths and weekdays) repeats every 400 years, so a
// pattern that occurs at all occurs within 401 years of any time.
constexpr int kSearchYears = 401;

constexpr int64_t kMicros = 1'000'000;

constexpr int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }

constexpr int64_t year_start(int y) {
    return int64_t{date::sys_days{date::year{y} / 1 / 1}.time_since_epoch().count()} * 86400;
}

// Local seconds of an instant.
int64_t to_local(const date::time_zone *zone, int64_t at) {
    if (!zone) return at;
    return zone->to_local(date::sys_seconds{seconds{at}}).time_since_epoch().count();
}

// The instant a matching local time fires at (the rules in cron.hpp).
int64_t fire_instant(const date::time_zone *zone, int64_t local) {
    if (!zone) return local;
    const date::local_info info = zone->get_info(date::local_seconds{seconds{local}});
    // In a gap: the transition that made it. Twice: `first` is the earlier.
    if (info.result == date::local_info::nonexistent) return info.second.begin.time_since_epoch().count();
    return local - info.first.offset.count();
}

// The lowest set bit of `mask` at `from` or above; -1 when none.
int next_bit(uint64_t mask, int from) {
    if (from >= 64) return -1;
    mask &= ~uint64_t{0} << from;
    return mask ? std::countr_zero(mask) : -1;
}

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view expr, std::string_view tz) {
    CronSchedule s;
    s.expression_ = std::string(trim_spaces(expr));
    s.time_zone_ = tz.empty() ? "UTC" : std::string(tz);

    std::string_view fields_text = s.expression_;
    if (!fields_text.empty() && fields_text.front() == '@') {
        const auto expanded = expand_macro(fields_text);
        if (!expanded) return fail(ErrorKind::invalid, "unknown cron macro '" + s.expression_ + "'");
        fields_text = *expanded;
    }
    std::vector<std::string_view> fields = words(fields_text);
    if (fields.size() != 5 && fields.size() != 6)
        return fail(ErrorKind::invalid, "cron expression needs 5 or 6 fields, got " + std::to_string(fields.size()));
    s.has_seconds_ = fields.size() == 6;
    if (!s.has_seconds_) fields.insert(fields.begin(), "0");

    const Field *const specs[] = {&kSecond, &kMinute, &kHour, &kDayOfMonth, &kMonth, &kDayOfWeek};
    uint64_t masks[6] = {};
    for (size_t i = 0; i < 6; ++i) {
        auto mask = parse_field(fields[i], *specs[i]);
        if (!mask) return std::move(mask).error();
        masks[i] = *mask;
    }
    s.seconds_ = masks[0];
    s.minutes_ = masks[1];
    s.hours_ = static_cast<uint32_t>(masks[2]);
    s.days_ = static_cast<uint32_t>(masks[3]);
    s.months_ = static_cast<uint32_t>(masks[4]);
    s.weekdays_ = static_cast<uint32_t>(masks[5]);
    // Vixie cron's rule: '*' (even */n) leaves the choice of days to the other field.
    s.either_day_ = fields[3].front() != '*' && fields[5].front() != '*';
    for (int first = 0; first < 7; ++first)
        for (int day = 1; day <= 31; ++day)
            if (s.weekdays_ >> ((first + day - 1) % 7) & 1) s.weekday_days_[first] |= uint32_t{1} << day;

    // Every month has every weekday, and every date falls on each weekday
    // in some year; so it fires unless the days of month alone rule out
    // every month chosen (30 February).
    if (!s.either_day_) {
        constexpr int kLongest[] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool some_day = false;
        for (int m = 1; m <= 12; ++m)
            if (s.months_ >> m & 1) some_day |= (s.days_ & ((uint32_t{2} << kLongest[m]) - 2)) != 0;
        if (!some_day) return fail(ErrorKind::invalid, "cron expression '" + s.expression_ + "' never fires");
    }

    if (s.time_zone_ != "UTC") {
        try {
            s.zone_ = date::locate_zone(s.time_zone_);
        } catch (const std::exception &) {  // unknown, or no tz database at all
            return fail(ErrorKind::invalid, "unknown time zone '" + s.time_zone_ + "'");
        }
    }
    return s;
}

uint32_t CronSchedule::day_mask(int year, unsigned month) const {
    const date::year_month ym = date::year{year} / date::month{month};
    const unsigned length = unsigned((ym / date::last).day());
    const uint32_t in_month = static_cast<uint32_t>((uint64_t{2} << length) - 2);
    const unsigned first = date::weekday{date::sys_days{ym / 1}}.c_encoding();
    const uint32_t by_date = days_ & in_month, by_weekday = weekday_days_[first] & in_month;
    return either_day_ ? (by_date | by_weekday) : (by_date & by_weekday);
}

std::optional<int64_t> CronSchedule::next_local(int64_t from, int last_year) const {
    // Field by field, largest first: a field that does not match moves to
    // its next matching value and resets the smaller ones, or carries into
    // the larger one. Each step is a bit scan, so a call takes a few steps
    // per month passed over.
    const int64_t day_number = floor_div(from, 86400);
    const date::year_month_day ymd{date::sys_days{date::days{static_cast<int>(day_number)}}};
    int year = int(ymd.year());
    int month = int(unsigned(ymd.month())), day = int(unsigned(ymd.day()));
    const int64_t second_of_day = from - day_number * 86400;
    int hour = int(second_of_day / 3600), minute = int(second_of_day / 60 % 60), second = int(second_of_day % 60);

    while (year <= last_year) {
        const int m = next_bit(months_, month);
        if (m < 0) {
            ++year;
            month = day = 1;
            hour = minute = second = 0;
            continue;
        }
        if (m != month) {
            month = m;
            day = 1;
            hour = minute = second = 0;
        }

        const int d = next_bit(day_mask(year, unsigned(month)), day);
        if (d < 0) {  // on to the next month (13 carries into the next year above)
            ++month;
            day = 1;
            hour = minute = second = 0;
            continue;
        }
        if (d != day) {
            day = d;
            hour = minute = second = 0;
        }

        const int h = next_bit(hours_, hour);
        if (h < 0) {
            ++day;
            hour = minute = second = 0;
            continue;
        }
        if (h != hour) {
            hour = h;
            minute = second = 0;
        }

        const int mi = next_bit(minutes_, minute);
        if (mi < 0) {
            ++hour;
            minute = second = 0;
            continue;
        }
        if (mi != minute) {
            minute = mi;
            second = 0;
        }

        const int sec = next_bit(seconds_, second);
        if (sec < 0) {
            ++minute;
            second = 0;
            continue;
        }
        const date::sys_days when = date::year{year} / date::month{unsigned(month)} / date::day{unsigned(day)};
        return int64_t{when.time_since_epoch().count()} * 86400 + hour * 3600 + minute * 60 + sec;
    }
    return std::nullopt;
}

std::optional<int64_t> CronSchedule::next_after(int64_t after_us) const {
    constexpr int64_t kFirst = year_start(kFirstYear), kEnd = year_start(kLastYear + 1);
    // Fire times are whole seconds: after `after` means from after + 1.
    const int64_t after = std::max(floor_div(after_us, kMicros), kFirst - 1);
    if (after >= kEnd - 1) return std::nullopt;

    // The first local time that may fire after `after`: the one after its
    // own local time, so that a gap ending at after + 1 is still searched.
    int64_t from = to_local(zone_, after) + 1;
    if (zone_) {
        // In the repeat of a fall-back hour, the hour's times fired at
        // their first occurrence, before `after`: go on from its end.
        const date::local_info info = zone_->get_info(date::local_seconds{seconds{from}});
        if (info.result == date::local_info::ambiguous && from - info.first.offset.count() <= after)
            from = (info.second.begin + info.first.offset).time_since_epoch().count();
    }
    const int64_t from_day = floor_div(from, 86400);
    const int from_year = int(date::year_month_day{date::sys_days{date::days{static_cast<int>(from_day)}}}.year());
    const int last_year = std::min(from_year + kSearchYears, kLastYear);

    // Fire instants never decrease as local times increase, so the first
    // match that fires after `after` is the answer; the loop only guards
    // against a zone whose rules break that.
    while (auto local = next_local(from, last_year)) {
        const int64_t at = fire_instant(zone_, *local);
        if (at > after) return at * kMicros;
        from = *local + 1;
    }
    return std::nullopt;
}

}  // namespace taskhost::model
