// Retry-After on a full queue's 503: the queue length over the rate jobs
// ended lately, within [1, 300]; without a recent end, 30 s per queued job.
#include "test_util.hpp"

using namespace th_test;

namespace {

// POST $execute of slow_task until the queue refuses one; its Retry-After.
// REQUIREs a 503 within `attempts`.
int retry_after_when_full(httplib::Client &cli, double seconds, int attempts = 5000) {
    for (int i = 0; i < attempts; ++i) {
        auto res = post_json(cli, "/api/v1/tasks/slow_task/$execute", {{"params", {{"seconds", seconds}}}});
        REQUIRE(res);
        if (res->status == 202) continue;
        check_problem(res, 503, "queue is full");
        REQUIRE(res->has_header("Retry-After"));
        return std::stoi(res->get_header_value("Retry-After"));
    }
    FAIL("the queue never filled");
    return 0;
}

size_t completed(httplib::Client &cli) {
    return get_json(cli, "/api/v1/jobs?status_filter=completed&limit=1000").size();
}

// One worker running slow_task(`seconds`) back to back, a queue of
// `queue_size` kept full: the Retry-After of a refused submit, once at least
// `ended` jobs have ended (so the rate is measured).
int retry_after_under_load(size_t queue_size, double seconds, size_t ended) {
    Service svc(ServiceOptions::examples({"demo.so"})
                    .flags({"--max-concurrency", "1", "--queue-size", std::to_string(queue_size)}));
    auto &cli = svc.cli();
    // Topped up to full while the first ones end.
    REQUIRE(eventually(
        [&] {
            retry_after_when_full(cli, seconds);
            return completed(cli) >= ended;
        },
        30s, 50ms));
    const int retry_after = retry_after_when_full(cli, seconds);
    MESSAGE("queue " << queue_size << ", " << completed(cli) << " ended: Retry-After " << retry_after);
    return retry_after;
}

}  // namespace

TEST_SUITE("retry after") {

TEST_CASE("a full queue's Retry-After grows with the backlog it has to drain") {
    // About 2 jobs end a second (fewer on a loaded machine): a queue of 2
    // drains within a second or so, one of 40 takes 20 s or more. (Jobs of
    // 0.5 s: a submit may take ~40 ms here, so shorter ones would drain the
    // queue about as fast as one client fills it.)
    const int small = retry_after_under_load(2, 0.5, 3);
    const int large = retry_after_under_load(40, 0.5, 3);
    CHECK(small >= 1);
    CHECK(small <= 4);
    CHECK(large >= 5);
    CHECK(large < 300);  // measured, not the no-rate fallback or the cap
    CHECK(large > small);
}

TEST_CASE("with no job ended lately, Retry-After is 30 s per queued job, at most 300") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "1", "--queue-size", "3"}));
    auto &cli = svc.cli();
    const std::string running = submit(cli, "slow_task", {{"seconds", 60}});
    wait_status(cli, running, "running");
    CHECK(retry_after_when_full(cli, 60) == 90);

    Service big(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "1", "--queue-size", "20"}));
    const std::string busy = submit(big.cli(), "slow_task", {{"seconds", 60}});
    wait_status(big.cli(), busy, "running");
    CHECK(retry_after_when_full(big.cli(), 60) == 300);
}

}  // TEST_SUITE("retry after")
