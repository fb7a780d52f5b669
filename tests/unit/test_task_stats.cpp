// jobs::TaskStats: which tasks a submitter may run on its own thread.
#include <doctest/doctest.h>

#include "jobs/task_stats.hpp"
#include "metrics/metrics.hpp"

using taskhost::jobs::TaskStats;

TEST_SUITE("task stats") {

TEST_CASE("quick once its runs are short; a long run of any kind ends that for the version") {
    taskhost::metrics::Metrics metrics;
    TaskStats stats(metrics.task("t"));
    CHECK_FALSE(stats.quick(std::nullopt));  // nothing known yet
    stats.record_run(50, 60);
    CHECK(stats.quick(std::nullopt));
    CHECK(stats.quick(5.0));
    // Cut short after a short time: not a sample, nothing changes.
    stats.record_cut_short(20);
    CHECK(stats.quick(std::nullopt));
    // Cut short after a long time (a timeout): the task can be slow.
    stats.record_cut_short(150'000);
    CHECK_FALSE(stats.quick(std::nullopt));
    CHECK_FALSE(stats.quick(3600.0));
    // A new generation is other code: known afresh.
    stats.use_generation(2);
    CHECK_FALSE(stats.quick(std::nullopt));
    stats.record_run(50, 60);
    CHECK(stats.quick(std::nullopt));
}

TEST_CASE("a worker's own time cannot hide a run that was long by the host's clock") {
    taskhost::metrics::Metrics metrics;
    TaskStats stats(metrics.task("t"));
    stats.record_run(0, 150'000);  // "0 µs", says the worker; 150 ms, saw the host
    CHECK_FALSE(stats.quick(std::nullopt));
    CHECK_FALSE(stats.quick(3600.0));
}

TEST_CASE("the hand-off to a worker does not count against a quick task") {
    taskhost::metrics::Metrics metrics;
    TaskStats stats(metrics.task("t"));
    stats.record_run(40, 900);  // 40 µs of code, 900 µs with the socket round trip
    CHECK(stats.quick(std::nullopt));  // under 200 µs
}

}  // TEST_SUITE("task stats")
