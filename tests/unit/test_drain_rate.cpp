#include <doctest/doctest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "jobs/drain_rate.hpp"

using taskhost::jobs::DrainRate;
using namespace std::chrono_literals;

namespace {

// A point of the steady clock far from its epoch, on a whole second.
DrainRate::Clock::time_point at(double seconds) {
    return DrainRate::Clock::time_point(
        std::chrono::duration_cast<DrainRate::Clock::duration>(std::chrono::duration<double>(100000 + seconds)));
}

}  // namespace

TEST_SUITE("drain rate") {

TEST_CASE("no end in the window: no rate, and the fallback is the window per queued job, at most 300") {
    DrainRate rate;
    CHECK(!rate.per_second(at(0)));
    CHECK(DrainRate::retry_after_s(1, std::nullopt) == DrainRate::kWindowS);
    CHECK(DrainRate::retry_after_s(2, std::nullopt) == 2 * DrainRate::kWindowS);
    CHECK(DrainRate::retry_after_s(1000, std::nullopt) == DrainRate::kMaxRetryAfterS);
    CHECK(DrainRate::retry_after_s(0, std::nullopt) == DrainRate::kWindowS);  // drained meanwhile: as one
    // Ends older than the window are forgotten.
    rate.count(at(0.5));
    CHECK(rate.per_second(at(10)).has_value());
    CHECK(!rate.per_second(at(DrainRate::kWindowS + 1)));
}

TEST_CASE("a steady rate is measured as such, and Retry-After is the queue over it, rounded up") {
    DrainRate rate;
    // 10 jobs a second for a minute.
    for (int i = 0; i < 600; ++i) rate.count(at(i * 0.1));
    const auto r = rate.per_second(at(60));
    REQUIRE(r);
    CHECK(*r == doctest::Approx(10).epsilon(0.05));
    CHECK(DrainRate::retry_after_s(100, r) == doctest::Approx(10).epsilon(0.11));
    CHECK(DrainRate::retry_after_s(1, r) == 1);         // at least 1
    CHECK(DrainRate::retry_after_s(25, 10.0) == 3);     // 2.5 rounded up
    CHECK(DrainRate::retry_after_s(100000, r) == 300);  // at most 300
    CHECK(DrainRate::retry_after_s(7, 1e-9) == 300);
}

TEST_CASE("a host that has only just got busy is measured from its first end, not averaged with idle time") {
    DrainRate rate;
    for (int i = 0; i < 20; ++i) rate.count(at(10 + i * 0.25));  // 4 a second for 5 s
    const auto r = rate.per_second(at(15));
    REQUIRE(r);
    CHECK(*r == doctest::Approx(4).epsilon(0.05));
    // A burst within one second is counted over at least a second.
    DrainRate burst;
    for (int i = 0; i < 50; ++i) burst.count(at(3.9));
    CHECK(*burst.per_second(at(3.95)) == doctest::Approx(50));
}

TEST_CASE("a slow queue: a job every 20 s over the window") {
    DrainRate rate;
    rate.count(at(0));
    rate.count(at(20));
    const auto r = rate.per_second(at(29.5));
    REQUIRE(r);
    CHECK(*r == doctest::Approx(2 / 29.5));
    CHECK(DrainRate::retry_after_s(3, r) == 45);  // 3 / (2 / 29.5) = 44.25
}

TEST_CASE("ends counted from many threads at once are all counted" * doctest::test_suite("concurrency")) {
    DrainRate rate;
    const auto now = DrainRate::Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i) rate.count(now);
        });
    for (auto &t : threads) t.join();
    // All in the one second they were given: counted over a second.
    CHECK(*rate.per_second(now) == doctest::Approx(40000.0));
}

}  // TEST_SUITE("drain rate")
