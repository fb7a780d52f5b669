// Idempotency keys on one host: one submit at a time decides a key.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "jobs/idempotency.hpp"

using taskhost::jobs::IdempotencyKeys;
using Kind = IdempotencyKeys::Claim::Kind;
using namespace std::chrono_literals;

TEST_CASE("idempotency keys: the first claim makes, the others wait for its job") {
    IdempotencyKeys keys;
    CHECK(keys.claim("k", 100, 0, 1s).kind == Kind::make);
    std::atomic<bool> answered{false};
    IdempotencyKeys::Claim second;
    std::thread waiter([&] {
        second = keys.claim("k", 101, 0, 10s);
        answered = true;
    });
    std::this_thread::sleep_for(50ms);  // room for a wrong early answer
    CHECK_FALSE(answered.load());
    keys.made("k", "job-1", "hash-1", 100);
    waiter.join();
    CHECK(second.kind == Kind::existing);
    CHECK(second.job_id == "job-1");
    CHECK(second.request_hash == "hash-1");
    // Another key is independent.
    CHECK(keys.claim("other", 102, 0, 1s).kind == Kind::make);
}

TEST_CASE("idempotency keys: a holder that gives up passes the key on; an expired key makes again") {
    IdempotencyKeys keys;
    REQUIRE(keys.claim("k", 100, 0, 1s).kind == Kind::make);
    keys.given_up("k");
    REQUIRE(keys.claim("k", 100, 0, 1s).kind == Kind::make);
    keys.made("k", "job-1", "h", 100);
    CHECK(keys.claim("k", 150, 100, 1s).kind == Kind::existing);  // made at 100, valid from 100
    CHECK(keys.claim("k", 250, 101, 1s).kind == Kind::make);      // expired
}

TEST_CASE("idempotency keys: a wait for a stuck holder ends with an error") {
    IdempotencyKeys keys;
    REQUIRE(keys.claim("k", 100, 0, 1s).kind == Kind::make);
    CHECK_THROWS_WITH(keys.claim("k", 101, 0, 20ms), doctest::Contains("still being stored"));
}

TEST_CASE("idempotency keys: a deleted job frees its key once, not a key another submit holds since") {
    IdempotencyKeys keys;
    REQUIRE(keys.claim("k", 100, 0, 1s).kind == Kind::make);
    keys.made("k", "job-1", "h", 100);
    keys.forget_job("k", "job-1");                            // job-1 deleted
    REQUIRE(keys.claim("k", 101, 0, 1s).kind == Kind::make);  // a new submit holds it
    keys.forget_job("k", "job-1");                            // a late reader of job-1: no effect
    std::atomic<bool> answered{false};
    std::thread waiter([&] {
        CHECK(keys.claim("k", 102, 0, 10s).job_id == "job-2");
        answered = true;
    });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(answered.load());  // still waiting on the holder
    keys.made("k", "job-2", "h", 101);
    waiter.join();
}
