#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "util/clock.hpp"
#include "util/ulid.hpp"

using namespace taskhost;

namespace {
// ^[0-7][0-9A-HJKMNP-TV-Z]{25}$, spelled out (std::regex trips GCC 12 warnings).
bool canonical(const std::string &s) {
    if (s.size() != 26 || s[0] < '0' || s[0] > '7') return false;
    for (char c : s) {
        const bool digit = c >= '0' && c <= '9';
        const bool letter = c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U';
        if (!digit && !letter) return false;
    }
    return true;
}

uint64_t wall_ms() {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
}
}  // namespace

TEST_CASE("ulid: canonical format") {
    for (int i = 0; i < 100; ++i) {
        const std::string s = new_ulid_string();
        CHECK(s.size() == 26);
        CHECK(canonical(s));
    }
}

TEST_CASE("ulid: round trip through text") {
    for (int i = 0; i < 100; ++i) {
        const Ulid id = new_ulid();
        const auto parsed = parse_ulid(id.str());
        REQUIRE(parsed.has_value());
        CHECK(*parsed == id);
        CHECK(parsed->str() == id.str());
    }
    // Extremes of the range.
    CHECK(parse_ulid("00000000000000000000000000")->str() == "00000000000000000000000000");
    const auto max = parse_ulid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    REQUIRE(max);
    CHECK(std::all_of(max->bytes.begin(), max->bytes.end(), [](uint8_t b) { return b == 0xff; }));
    CHECK(max->str() == "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
}

TEST_CASE("ulid: timestamp is the creation time in ms") {
    const uint64_t before = wall_ms();
    const Ulid id = new_ulid();
    const uint64_t after = wall_ms();
    // Monotonic generation may run at most a few ms ahead of the clock.
    CHECK(id.timestamp_ms() >= before);
    CHECK(id.timestamp_ms() <= after + 5);

    // A known value: 2016-07-30T23:54:10.259Z from the ULID spec example.
    const auto spec = parse_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAV");
    REQUIRE(spec);
    CHECK(spec->timestamp_ms() == 1469922850259ULL);
}

TEST_CASE("ulid: 10,000 ids sort in creation order") {
    std::vector<std::string> ids;
    ids.reserve(10000);
    for (int i = 0; i < 10000; ++i) ids.push_back(new_ulid_string());
    for (size_t i = 1; i < ids.size(); ++i) REQUIRE(ids[i - 1] < ids[i]);
    std::vector<Ulid> bin;
    for (auto &s : ids) bin.push_back(*parse_ulid(s));
    CHECK(std::is_sorted(bin.begin(), bin.end()));
    CHECK(std::adjacent_find(bin.begin(), bin.end()) == bin.end());
}

TEST_CASE("ulid: parse rejects anything but the strict uppercase form") {
    const std::string good = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    CHECK(is_valid_ulid(good));
    CHECK_FALSE(is_valid_ulid("01arz3ndektsv4rrffq69g5fav"));  // lowercase
    CHECK_FALSE(is_valid_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAv"));
    for (char bad : {'I', 'L', 'O', 'U', '-', ' ', '\0'}) {
        std::string s = good;
        s[10] = bad;
        CHECK_FALSE(is_valid_ulid(s));
    }
    CHECK_FALSE(is_valid_ulid(good.substr(0, 25)));  // wrong length
    CHECK_FALSE(is_valid_ulid(good + "0"));
    CHECK_FALSE(is_valid_ulid(""));
    for (char first : {'8', '9', 'A', 'Z'}) {  // > 128 bits
        std::string s = good;
        s[0] = first;
        CHECK_FALSE(is_valid_ulid(s));
    }
    std::string seven = good;
    seven[0] = '7';
    CHECK(is_valid_ulid(seven));
}

TEST_CASE("ulid: concurrent generation is unique and per-thread ordered" * doctest::test_suite("concurrency")) {
    constexpr int kThreads = 8, kPer = 5000;
    std::vector<std::vector<std::string>> out(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            out[static_cast<size_t>(t)].reserve(kPer);
            for (int i = 0; i < kPer; ++i) out[static_cast<size_t>(t)].push_back(new_ulid_string());
        });
    for (auto &th : threads) th.join();
    std::set<std::string> all;
    for (auto &v : out) {
        CHECK(std::is_sorted(v.begin(), v.end()));
        all.insert(v.begin(), v.end());
    }
    CHECK(all.size() == static_cast<size_t>(kThreads * kPer));
}

TEST_CASE("clock: iso8601_utc") {
    CHECK(iso8601_utc(0) == "1970-01-01T00:00:00.000000Z");
    CHECK(iso8601_utc(1469922850259000) == "2016-07-30T23:54:10.259000Z");
    CHECK(iso8601_utc(1762598581123456) == "2025-11-08T10:43:01.123456Z");
    CHECK(iso8601_utc(951782400000000) == "2000-02-29T00:00:00.000000Z");  // leap day
    CHECK(iso8601_utc(253402300799999999) == "9999-12-31T23:59:59.999999Z");
    CHECK(iso8601_utc(-1) == "1969-12-31T23:59:59.999999Z");
    const int64_t now = now_us();
    const auto sys =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    CHECK(sys - now >= 0);
    CHECK(sys - now < 1000000);
    CHECK(iso8601_utc(now).size() == 27);
}

TEST_CASE("clock: parse_rfc3339") {
    CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_rfc3339("2025-11-08T10:43:01.123456Z") == 1762598581123456);
    CHECK(parse_rfc3339("2025-11-08t10:43:01.123456789z") == 1762598581123456);  // beyond µs: cut
    CHECK(parse_rfc3339("2025-11-08 11:43:01.5+01:00") == 1762598581500000);
    CHECK(parse_rfc3339("2025-11-08T05:13:01-05:30") == 1762598581000000);
    CHECK(parse_rfc3339("2000-02-29T00:00:00Z") == 951782400000000);
    CHECK(parse_rfc3339("1969-12-31T23:59:59.999999Z") == -1);
    // Round trip over the formatter.
    const int64_t now = now_us();
    CHECK(parse_rfc3339(iso8601_utc(now)) == now);
    for (const char *bad :
         {"", "2025-11-08", "2025-11-08T10:43:01", "2025-11-08T10:43:01+0100", "2025-13-01T00:00:00Z",
          "2025-02-29T00:00:00Z", "2025-04-31T00:00:00Z", "2025-11-08T24:00:00Z", "2025-11-08T10:43:01.Z",
          "2025-11-08T10:43:01Zjunk", "+2025-11-08T10:43:01Z", "2025-11-08T10:43:01+24:00", "1762598581"})
        CHECK_MESSAGE(!parse_rfc3339(bad), bad);
}
