#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "util/yield_wait.hpp"

using namespace taskhost;
using Clock = std::chrono::steady_clock;

TEST_CASE("yield_until: ready at once returns true without waiting") {
    int calls = 0;
    CHECK(yield_until([&] { return ++calls > 0; }, std::chrono::microseconds(0)));
    CHECK(calls == 1);
}

TEST_CASE("yield_until: gives up after its budget, having checked again at least once") {
    int calls = 0;
    const auto t0 = Clock::now();
    CHECK_FALSE(yield_until(
        [&] {
            ++calls;
            return false;
        },
        std::chrono::microseconds(200)));
    CHECK(Clock::now() - t0 >= std::chrono::microseconds(200));
    CHECK(calls >= 2);
}

TEST_CASE("yield_until: sees a flag another thread sets" * doctest::test_suite("concurrency")) {
    std::atomic<bool> flag{false};
    std::thread setter([&] { flag.store(true, std::memory_order_release); });
    // A generous budget: the verdict is whether the flag was seen, not when.
    CHECK(yield_until([&] { return flag.load(std::memory_order_acquire); }, std::chrono::seconds(30)));
    setter.join();
}
