// Cron schedules: when a recurring job (model/schedule.hpp) fires, read
// from a cron expression in a time zone.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hpp"

namespace date {
class time_zone;  // <date/tz.h>, kept out of the header: it is heavy
}

namespace taskhost::model {

// A cron schedule: when a recurring job fires, in a time zone.
//
// Matching is standard (Vixie) cron on the zone's local time: a time fires
// when every field matches, except that day-of-month and day-of-week,
// when both are restricted (neither starts with '*'), match a day when
// EITHER does; when one starts with '*', a day must match both (so a
// plain '*' leaves the other to decide alone).
//
// Daylight saving, where local times are not one-to-one with instants:
// - a local time that does not exist (the gap when clocks spring forward)
//   fires at the first instant after the gap, the transition itself. All
//   matching times in one gap, and the first time after it, share that
//   instant: it fires once ("30 2 * * *" in Europe/Oslo on a spring-forward
//   day fires at 03:00 local);
// - a local time that occurs twice (when clocks fall back) fires once, at
//   its first occurrence; the repeated hour fires nothing.
// So fire times are strictly increasing, with no repeats and no going back.
// The zone rules are the system's tzdata as Debian's date-tz reads it:
// it does not read the rule that extends a zone past its last listed
// transition (2037), so later years keep the offset in force then.
class CronSchedule {
public:
    // expr: 5 fields "minute hour day-of-month month day-of-week", or 6 fields with a leading seconds field,
    // or a macro: @yearly @annually @monthly @weekly @daily @midnight @hourly (case-insensitive). Fields take
    // *, numbers, ranges a-b, steps */n and a-b/n and n/step (n/step = n-max/step), lists with commas; months
    // JAN-DEC and days SUN-SAT by name (case-insensitive; names usable in ranges); day-of-week 0-7 where 0 and 7
    // are Sunday ('*' and n/step end at 6, so Sunday counts once). A step is from 1 to the field's count of
    // values (*/60 in minutes: on the hour); a range may not run backwards (5-1).
    // tz: an IANA zone name ("Europe/Oslo", "UTC", "America/New_York"); empty means "UTC".
    // Errors (ErrorKind::invalid) name the field and the problem, e.g.
    //   "cron field 'hour': 24 is out of range 0-23", "cron expression needs 5 or 6 fields, got 3",
    //   "unknown time zone 'Mars/Base'", "unknown cron macro '@reboot'", "cron expression '0 0 30 2 *' never fires".
    static Result<CronSchedule> parse(std::string_view expr, std::string_view tz = "UTC");

    // The first fire time strictly after `after_us` (microseconds since the Unix epoch, UTC), in microseconds
    // (always a whole second). nullopt when there is none: parse() rejects expressions that never fire, and the
    // search covers 401 years (the calendar repeats every 400), so nullopt means "never" or "not before the
    // year 10000". Fire times from one schedule are strictly increasing (see the daylight saving rules above).
    std::optional<int64_t> next_after(int64_t after_us) const;

    const std::string &expression() const { return expression_; }  // as given (trimmed)
    const std::string &time_zone() const { return time_zone_; }    // as given, "UTC" when empty
    bool has_seconds() const { return has_seconds_; }              // 6 fields

private:
    CronSchedule() = default;
    // The first matching local time (seconds since 1970-01-01 00:00 local) at or after `from`, not later than
    // the end of `last_year`.
    std::optional<int64_t> next_local(int64_t from, int last_year) const;
    // The days of a month that match the day fields (either or both, as either_day_ says), as bits 1-31.
    uint32_t day_mask(int year, unsigned month) const;

    // Each field as a mask of the values it matches: bit v for value v.
    uint64_t seconds_ = 0, minutes_ = 0;
    uint32_t hours_ = 0;       // bits 0-23
    uint32_t days_ = 0;        // bits 1-31
    uint32_t months_ = 0;      // bits 1-12
    uint32_t weekdays_ = 0;    // bits 0-6, 0 = Sunday
    bool either_day_ = false;  // both day fields restricted: a day matches when either does
    // By the weekday of a month's first day (0 = Sunday): the days 1-31
    // whose weekday is in weekdays_.
    std::array<uint32_t, 7> weekday_days_{};

    std::string expression_, time_zone_;
    bool has_seconds_ = false;
    const date::time_zone *zone_ = nullptr;  // nullptr: UTC; else owned by the tz database, which outlives us
};

}  // namespace taskhost::model
