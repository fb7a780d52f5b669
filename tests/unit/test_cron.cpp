// Cron schedules: the fields and macros they read, the errors that name
// what is wrong, and when they fire, in UTC and across daylight saving.
#include <doctest/doctest.h>

#include <date/date.h>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "model/cron.hpp"
#include "util/clock.hpp"

using namespace taskhost;
using namespace taskhost::model;

namespace {

// µs since the epoch of a UTC time written "2027-03-28T01:00:00Z".
int64_t us(const std::string &iso) {
    const auto t = parse_rfc3339(iso);
    REQUIRE_MESSAGE(t.has_value(), iso);
    return *t;
}

// A fire time (a whole second) as "2027-03-28T01:00:00Z".
std::string iso(int64_t at_us) {
    REQUIRE(at_us % 1'000'000 == 0);
    return date::format("%Y-%m-%dT%H:%M:%SZ", date::sys_seconds{std::chrono::seconds{at_us / 1'000'000}});
}

CronSchedule schedule(const std::string &expr, const std::string &tz = "UTC") {
    auto s = CronSchedule::parse(expr, tz);
    REQUIRE_MESSAGE(s.ok(), expr, " in ", tz, ": ", s.ok() ? "" : s.error().message);
    return *s;
}

// The first `n` fire times after `from`, one after another, space-separated.
std::string fires(const std::string &expr, const std::string &from, int n = 1, const std::string &tz = "UTC") {
    const CronSchedule s = schedule(expr, tz);
    std::string out;
    int64_t at = us(from);
    for (int i = 0; i < n; ++i) {
        const auto next = s.next_after(at);
        if (!next) return out + (out.empty() ? "" : " ") + "never";
        at = *next;
        out += (out.empty() ? "" : " ") + iso(at);
    }
    return out;
}

std::string error_of(const std::string &expr, const std::string &tz = "UTC") {
    auto s = CronSchedule::parse(expr, tz);
    REQUIRE_MESSAGE(!s.ok(), expr);
    CHECK(s.error().kind == ErrorKind::invalid);
    return s.error().message;
}

const std::string kMonday = "2027-05-17T10:20:30Z";

}  // namespace

TEST_CASE("cron: each macro stands for its five fields, in any case") {
    CHECK(fires("@yearly", kMonday, 2) == "2028-01-01T00:00:00Z 2029-01-01T00:00:00Z");
    CHECK(fires("@annually", kMonday) == "2028-01-01T00:00:00Z");
    CHECK(fires("@monthly", kMonday, 2) == "2027-06-01T00:00:00Z 2027-07-01T00:00:00Z");
    CHECK(fires("@weekly", kMonday, 2) == "2027-05-23T00:00:00Z 2027-05-30T00:00:00Z");  // Sundays
    CHECK(fires("@daily", kMonday, 2) == "2027-05-18T00:00:00Z 2027-05-19T00:00:00Z");
    CHECK(fires("@midnight", kMonday) == "2027-05-18T00:00:00Z");
    CHECK(fires("@hourly", kMonday, 2) == "2027-05-17T11:00:00Z 2027-05-17T12:00:00Z");
    CHECK(fires("@DAILY", kMonday) == "2027-05-18T00:00:00Z");

    const CronSchedule s = schedule("  @Hourly\t");
    CHECK(s.expression() == "@Hourly");
    CHECK(s.time_zone() == "UTC");
    CHECK(!s.has_seconds());
}

TEST_CASE("cron: month and day names, alone, in ranges and in lists, in any case") {
    CHECK(fires("0 12 * JAN-MAR MON-FRI", "2027-03-31T13:00:00Z", 2) == "2028-01-03T12:00:00Z 2028-01-04T12:00:00Z");
    CHECK(fires("0 0 1 jul,Dec *", kMonday, 3) == "2027-07-01T00:00:00Z 2027-12-01T00:00:00Z 2028-07-01T00:00:00Z");
    CHECK(fires("0 0 * * sat,Sun", kMonday, 3) == "2027-05-22T00:00:00Z 2027-05-23T00:00:00Z 2027-05-29T00:00:00Z");
    CHECK(fires("0 0 * * tue-THU", kMonday, 4) ==
          "2027-05-18T00:00:00Z 2027-05-19T00:00:00Z 2027-05-20T00:00:00Z 2027-05-25T00:00:00Z");
    CHECK(fires("0 0 * * mon-fri", kMonday, 20) == fires("0 0 * * 1-5", kMonday, 20));
    CHECK(fires("0 0 1 feb-apr *", kMonday, 20) == fires("0 0 1 2-4 *", kMonday, 20));
}

TEST_CASE("cron: steps */n, n/step (n to the field's end) and a-b/n") {
    CHECK(fires("*/15 * * * *", kMonday, 4) ==
          "2027-05-17T10:30:00Z 2027-05-17T10:45:00Z 2027-05-17T11:00:00Z 2027-05-17T11:15:00Z");
    CHECK(fires("5/20 * * * *", kMonday, 3) == "2027-05-17T10:25:00Z 2027-05-17T10:45:00Z 2027-05-17T11:05:00Z");
    CHECK(fires("10-30/10 * * * *", kMonday, 4) ==
          "2027-05-17T10:30:00Z 2027-05-17T11:10:00Z 2027-05-17T11:20:00Z 2027-05-17T11:30:00Z");
    CHECK(fires("0 */6 * * *", kMonday, 3) == "2027-05-17T12:00:00Z 2027-05-17T18:00:00Z 2027-05-18T00:00:00Z");
    CHECK(fires("0 0 */10 * *", kMonday, 4) ==
          "2027-05-21T00:00:00Z 2027-05-31T00:00:00Z 2027-06-01T00:00:00Z 2027-06-11T00:00:00Z");
    CHECK(fires("0 0 1 */5 *", kMonday, 3) == "2027-06-01T00:00:00Z 2027-11-01T00:00:00Z 2028-01-01T00:00:00Z");
    CHECK(fires("*/60 * * * *", kMonday, 2) == "2027-05-17T11:00:00Z 2027-05-17T12:00:00Z");  // a step may span all
}

TEST_CASE("cron: lists mix numbers, ranges and steps") {
    CHECK(fires("0,30 8,17-18 * * *", kMonday, 5) ==
          "2027-05-17T17:00:00Z 2027-05-17T17:30:00Z 2027-05-17T18:00:00Z 2027-05-17T18:30:00Z "
          "2027-05-18T08:00:00Z");
    CHECK(fires("1,2-4,50/5 * * * *", kMonday, 7) ==
          "2027-05-17T10:50:00Z 2027-05-17T10:55:00Z 2027-05-17T11:01:00Z 2027-05-17T11:02:00Z "
          "2027-05-17T11:03:00Z 2027-05-17T11:04:00Z 2027-05-17T11:50:00Z");
    CHECK(fires("0 0 1,1,1 * *", kMonday, 2) == "2027-06-01T00:00:00Z 2027-07-01T00:00:00Z");  // repeats are one
}

TEST_CASE("cron: day-of-week 7 is Sunday, like 0 and SUN") {
    const std::string sundays = "2027-05-23T00:00:00Z 2027-05-30T00:00:00Z 2027-06-06T00:00:00Z";
    CHECK(fires("0 0 * * 7", kMonday, 3) == sundays);
    CHECK(fires("0 0 * * 0", kMonday, 3) == sundays);
    CHECK(fires("0 0 * * SUN", kMonday, 3) == sundays);
    CHECK(fires("0 0 * * 0,7", kMonday, 3) == sundays);  // one Sunday, fired once
    CHECK(fires("0 0 * * 5-7", kMonday, 4) ==
          "2027-05-21T00:00:00Z 2027-05-22T00:00:00Z 2027-05-23T00:00:00Z 2027-05-28T00:00:00Z");
    // '*' ends at 6: Sunday counts once, so */2 is Sun, Tue, Thu, Sat.
    CHECK(fires("0 0 * * */2", kMonday, 4) ==
          "2027-05-18T00:00:00Z 2027-05-20T00:00:00Z 2027-05-22T00:00:00Z 2027-05-23T00:00:00Z");
}

TEST_CASE("cron: day-of-month and day-of-week both restricted: a day matches when either does") {
    // 2027-08-13 is a Friday, 2027-09-13 a Monday.
    CHECK(fires("0 0 13 * FRI", "2027-08-01T00:00:00Z", 8) ==
          "2027-08-06T00:00:00Z 2027-08-13T00:00:00Z 2027-08-20T00:00:00Z 2027-08-27T00:00:00Z "
          "2027-09-03T00:00:00Z 2027-09-10T00:00:00Z 2027-09-13T00:00:00Z 2027-09-17T00:00:00Z");
    CHECK(fires("0 0 13 * *", "2027-08-01T00:00:00Z", 2) == "2027-08-13T00:00:00Z 2027-09-13T00:00:00Z");
    CHECK(fires("0 0 * * FRI", "2027-08-01T00:00:00Z", 2) == "2027-08-06T00:00:00Z 2027-08-13T00:00:00Z");
    // A field that starts with '*' leaves the other to decide: here both must match (odd days that are Fridays).
    CHECK(fires("0 0 */2 * FRI", "2027-08-01T00:00:00Z", 4) ==
          "2027-08-13T00:00:00Z 2027-08-27T00:00:00Z 2027-09-03T00:00:00Z 2027-09-17T00:00:00Z");
    // Either may rescue a date that does not exist on its own.
    CHECK(CronSchedule::parse("0 0 30 2 FRI").ok());
}

TEST_CASE("cron: six fields put seconds first; five fire on the minute") {
    const CronSchedule s = schedule("*/2 * * * * *");
    CHECK(s.has_seconds());
    CHECK(fires("*/2 * * * * *", kMonday, 3) == "2027-05-17T10:20:32Z 2027-05-17T10:20:34Z 2027-05-17T10:20:36Z");
    CHECK(fires("30 0 0 * * *", kMonday) == "2027-05-18T00:00:30Z");
    CHECK(fires("0-10/5 59 23 31 12 *", kMonday, 4) ==
          "2027-12-31T23:59:00Z 2027-12-31T23:59:05Z 2027-12-31T23:59:10Z 2028-12-31T23:59:00Z");
    CHECK(fires("* * * * *", kMonday, 2) == "2027-05-17T10:21:00Z 2027-05-17T10:22:00Z");
    CHECK(!schedule("* * * * *").has_seconds());
    // A fraction of a second after a fire time is still after it.
    const CronSchedule every = schedule("* * * * * *");
    CHECK(every.next_after(us(kMonday) + 999'999) == us(kMonday) + 1'000'000);
}

TEST_CASE("cron: 29 February fires in leap years only, across 2100 (not a leap year) too") {
    CHECK(fires("0 0 29 2 *", "2027-03-01T00:00:00Z", 2) == "2028-02-29T00:00:00Z 2032-02-29T00:00:00Z");
    CHECK(fires("0 0 29 2 *", "2096-02-29T00:00:00Z") == "2104-02-29T00:00:00Z");
    CHECK(fires("0 0 31 * *", "2027-01-31T00:00:00Z", 3) ==
          "2027-03-31T00:00:00Z 2027-05-31T00:00:00Z 2027-07-31T00:00:00Z");
}

TEST_CASE("cron: next_after is strictly after, at any time") {
    const CronSchedule s = schedule("0 9 * * *");
    const int64_t nine = us("2027-05-17T09:00:00Z");
    CHECK(s.next_after(nine - 1) == nine);
    CHECK(s.next_after(nine) == us("2027-05-18T09:00:00Z"));
    CHECK(s.next_after(nine + 1) == us("2027-05-18T09:00:00Z"));
    // Before 1970 too (negative times round down to the second).
    CHECK(fires("0 0 1 1 *", "1969-06-01T00:00:00Z") == "1970-01-01T00:00:00Z");
    CHECK(schedule("* * * * * *").next_after(-1) == 0);
    CHECK(schedule("* * * * * *").next_after(-1'000'001) == -1'000'000);
}

TEST_CASE("cron: rare patterns are found years ahead; none past the year 9999") {
    // 1 January on a Sunday ('*/7' is Sunday alone): 2023, then 2034.
    CHECK(fires("0 0 1 1 */7", "2023-01-01T00:00:00Z") == "2034-01-01T00:00:00Z");
    CHECK(fires("0 0 * * *", "9999-12-30T12:00:00Z", 2) == "9999-12-31T00:00:00Z never");
    CHECK(!schedule("0 0 * * *").next_after(std::numeric_limits<int64_t>::max()));
    CHECK(schedule("0 0 1 1 *").next_after(std::numeric_limits<int64_t>::min()) == us("0001-01-01T00:00:00Z"));
}

TEST_CASE("cron: errors name the field and the problem") {
    CHECK(error_of("0 24 * * *") == "cron field 'hour': 24 is out of range 0-23");
    CHECK(error_of("0 0 *") == "cron expression needs 5 or 6 fields, got 3");
    CHECK(error_of("   ") == "cron expression needs 5 or 6 fields, got 0");
    CHECK(error_of("1 2 3 4 5 6 7") == "cron expression needs 5 or 6 fields, got 7");
    CHECK(error_of("0 0 * * *", "Mars/Base") == "unknown time zone 'Mars/Base'");
    CHECK(error_of("0 0 * * *", "europe/oslo") == "unknown time zone 'europe/oslo'");
    CHECK(error_of("@reboot") == "unknown cron macro '@reboot'");
    CHECK(error_of("@daily 5") == "unknown cron macro '@daily 5'");
    CHECK(error_of("0 0 30 2 *") == "cron expression '0 0 30 2 *' never fires");
    CHECK(error_of(" 0 0 31 4,6,9,11 * ") == "cron expression '0 0 31 4,6,9,11 *' never fires");
    CHECK(error_of("0 0 30-31 2 */2") == "cron expression '0 0 30-31 2 */2' never fires");

    CHECK(error_of("60 * * * *") == "cron field 'minute': 60 is out of range 0-59");
    CHECK(error_of("60 * * * * *") == "cron field 'second': 60 is out of range 0-59");
    CHECK(error_of("0 0 0 * *") == "cron field 'day-of-month': 0 is out of range 1-31");
    CHECK(error_of("0 0 32 * *") == "cron field 'day-of-month': 32 is out of range 1-31");
    CHECK(error_of("0 0 * 13 *") == "cron field 'month': 13 is out of range 1-12");
    CHECK(error_of("0 0 * * 8") == "cron field 'day-of-week': 8 is out of range 0-7");
    CHECK(error_of("99999999999 * * * *") == "cron field 'minute': 99999999999 is out of range 0-59");
    CHECK(error_of("0 0 * FOO *") == "cron field 'month': 'FOO' is not a number or a month name");
    CHECK(error_of("0 0 * * Funday") == "cron field 'day-of-week': 'Funday' is not a number or a day name");
    CHECK(error_of("0 0 * * JAN") == "cron field 'day-of-week': 'JAN' is not a number or a day name");
    CHECK(error_of("x * * * *") == "cron field 'minute': 'x' is not a number");
    CHECK(error_of("0 MON * * *") == "cron field 'hour': 'MON' is not a number");
    CHECK(error_of("*/0 * * * *") == "cron field 'minute': step 0 is out of range 1-60");
    CHECK(error_of("0 0 * */13 *") == "cron field 'month': step 13 is out of range 1-12");
    CHECK(error_of("*/x * * * *") == "cron field 'minute': step 'x' is not a number");
    CHECK(error_of("*/ * * * *") == "cron field 'minute': step '' is not a number");
    CHECK(error_of("0 5-3 * * *") == "cron field 'hour': range 5-3 runs backwards");
    CHECK(error_of("0 0 * * FRI-MON") == "cron field 'day-of-week': range FRI-MON runs backwards");
    CHECK(error_of("1,,2 * * * *") == "cron field 'minute': '1,,2' has an empty list item");
    CHECK(error_of("1, * * * *") == "cron field 'minute': '1,' has an empty list item");
    CHECK(error_of("-5 * * * *") == "cron field 'minute': '-5' is not a valid item");
    CHECK(error_of("1-2-3 * * * *") == "cron field 'minute': '1-2-3' is not a valid item");
}

TEST_CASE("cron: in a time zone it fires at local time, whatever the offset") {
    CHECK(fires("0 9 * * *", "2027-01-15T12:00:00Z", 1, "Europe/Oslo") == "2027-01-16T08:00:00Z");  // CET, +1
    CHECK(fires("0 9 * * *", "2027-07-15T12:00:00Z", 1, "Europe/Oslo") == "2027-07-16T07:00:00Z");  // CEST, +2
    CHECK(fires("0 9 * * *", "2027-01-15T12:00:00Z", 1, "America/New_York") == "2027-01-15T14:00:00Z");
    CHECK(fires("0 9 * * *", "2027-07-15T12:00:00Z", 1, "America/New_York") == "2027-07-15T13:00:00Z");
    // Days are local days: 00:30 on a Monday in Oslo is Sunday 23:30 in UTC (winter).
    CHECK(fires("30 0 * * MON", "2027-01-01T00:00:00Z", 1, "Europe/Oslo") == "2027-01-03T23:30:00Z");

    const CronSchedule oslo = schedule("0 9 * * *", "Europe/Oslo");
    CHECK(oslo.time_zone() == "Europe/Oslo");
    const auto utc = CronSchedule::parse("0 9 * * *", "");
    REQUIRE(utc.ok());
    CHECK(utc->time_zone() == "UTC");
    CHECK(utc->next_after(us("2027-01-15T12:00:00Z")) == us("2027-01-16T09:00:00Z"));
}

TEST_CASE("cron: a local time in the spring-forward gap fires once, when the gap ends") {
    // Europe/Oslo, 2027-03-28: 02:00 local (01:00 UTC) becomes 03:00.
    const std::string oslo = "Europe/Oslo";
    CHECK(fires("30 2 * * *", "2027-03-27T12:00:00Z", 2, oslo) == "2027-03-28T01:00:00Z 2027-03-29T00:30:00Z");
    CHECK(fires("30 2 * * *", "2027-03-28T00:59:59Z", 1, oslo) == "2027-03-28T01:00:00Z");
    CHECK(fires("30 2 * * *", "2027-03-28T01:00:00Z", 1, oslo) == "2027-03-29T00:30:00Z");
    // Every minute: the gap's hour and 03:00 are one instant, fired once.
    CHECK(fires("* * * * *", "2027-03-28T00:58:00Z", 3, oslo) ==
          "2027-03-28T00:59:00Z 2027-03-28T01:00:00Z 2027-03-28T01:01:00Z");
    CHECK(fires("*/20 2 * * *", "2027-03-27T12:00:00Z", 4, oslo) ==
          "2027-03-28T01:00:00Z 2027-03-29T00:00:00Z 2027-03-29T00:20:00Z 2027-03-29T00:40:00Z");
    // America/New_York, 2027-03-14: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    CHECK(fires("30 2 * * *", "2027-03-13T12:00:00Z", 2, "America/New_York") ==
          "2027-03-14T07:00:00Z 2027-03-15T06:30:00Z");
}

TEST_CASE("cron: a local time that occurs twice (fall back) fires once, at its first occurrence") {
    // Europe/Oslo, 2027-10-31: 03:00 CEST (01:00 UTC) becomes 02:00 CET.
    const std::string oslo = "Europe/Oslo";
    CHECK(fires("30 2 * * *", "2027-10-30T12:00:00Z", 2, oslo) == "2027-10-31T00:30:00Z 2027-11-01T01:30:00Z");
    CHECK(fires("30 2 * * *", "2027-10-31T00:30:00Z", 1, oslo) == "2027-11-01T01:30:00Z");
    CHECK(fires("30 2 * * *", "2027-10-31T01:15:00Z", 1, oslo) == "2027-11-01T01:30:00Z");  // in the repeat
    // From inside the repeated hour, the next is after it, not its first occurrence again.
    CHECK(fires("* * * * * *", "2027-10-31T01:10:00Z", 1, oslo) == "2027-10-31T02:00:00Z");
    // America/New_York, 2027-11-07: 02:00 EDT becomes 01:00 EST; 01:30 first occurs at 05:30 UTC.
    CHECK(fires("30 1 * * *", "2027-11-06T12:00:00Z", 2, "America/New_York") ==
          "2027-11-07T05:30:00Z 2027-11-08T06:30:00Z");
}

TEST_CASE("cron: every half hour across the fall-back hour never goes back and never repeats") {
    const std::string oslo = "Europe/Oslo";
    // 01:30 CEST, 02:00 and 02:30 (first occurrences, CEST), then 03:00 CET: the repeat fires nothing.
    CHECK(fires("*/30 * * * *", "2027-10-30T23:00:00Z", 5, oslo) ==
          "2027-10-30T23:30:00Z 2027-10-31T00:00:00Z 2027-10-31T00:30:00Z 2027-10-31T02:00:00Z "
          "2027-10-31T02:30:00Z");

    // A local year of fires, spring and fall: strictly increasing, so no instant twice; the counts are a plain
    // year's less what the gap merges (02:00, 02:30 and 03:00 are one instant on 28 March).
    const std::pair<const char *, int> years[] = {
        {"*/30 * * * *", 365 * 48 - 2}, {"0 2 * * *", 365}, {"* 2 * * *", 364 * 60 + 1}, {"59 1-3 * * *", 365 * 3}};
    for (const auto &one : years) {
        const char *expr = one.first;
        CAPTURE(expr);
        const CronSchedule s = schedule(expr, oslo);
        const int64_t end = us("2027-12-31T23:00:00Z");  // local midnight, 1 January 2028
        int64_t at = us("2026-12-31T22:59:59Z");
        int count = 0;
        bool increasing = true;
        while (true) {
            const auto next = s.next_after(at);
            if (!next || *next >= end) break;
            increasing = increasing && *next > at;
            at = *next;
            ++count;
        }
        CHECK(increasing);
        CHECK(count == one.second);
    }
}
