// Numeric parameters out of range are a 400 naming the parameter and its
// range: nothing wraps round (offset 2^64-1 once read as -1, the first rows)
// or overflows a deadline.
#include "test_util.hpp"

#include <cstdint>
#include <limits>

using namespace th_test;

namespace {

const std::string kMax64 = "18446744073709551615";    // 2^64 - 1
const std::string kPast64 = "18446744073709551616";   // 2^64
const std::string kMaxInt64 = "9223372036854775807";  // 2^63 - 1, SQLite's largest OFFSET
const std::string kPastInt64 = "9223372036854775808";

}  // namespace

TEST_SUITE("parameter ranges") {

TEST_CASE("offset, limit, page and size out of range are 400, on jobs and artifacts alike") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    run_task(cli, "hello");  // one job, one artifact: a wrapped offset would show them
    for (const std::string list : {"/api/v1/jobs", "/api/v1/artifacts"}) {
        CAPTURE(list);
        const std::string offset_range = "offset must be an integer from 0 to " + kMaxInt64;
        for (const std::string &bad : {kMax64, kPast64, kPastInt64, std::string("99999999999999999999999"),
                                       std::string("-1"), std::string("1e3")})
            check_problem(cli.Get(list + "?offset=" + bad), 400, offset_range);
        for (const std::string &bad : {kMax64, kPast64, std::string("1001"), std::string("0")}) {
            check_problem(cli.Get(list + "?limit=" + bad), 400, "limit must be an integer from 1 to 1000");
            check_problem(cli.Get(list + "?page=1&size=" + bad), 400, "size must be an integer from 1 to 1000");
        }
        // (page - 1) * size must stay within 2^63 - 1.
        check_problem(cli.Get(list + "?page=" + kMax64 + "&size=10"), 400,
                      "page must be an integer from 1 to 922337203685477581");
        check_problem(cli.Get(list + "?page=922337203685477582&size=10"), 400, "page must be an integer from 1 to");
        check_problem(cli.Get(list + "?page=" + kMax64 + "&size=1"), 400,
                      "page must be an integer from 1 to " + kMaxInt64);
        check_problem(cli.Get(list + "?page=" + kPast64 + "&size=1"), 400, "page must be an integer from 1 to");
        check_problem(cli.Get(list + "?page=0&size=1"), 400, "page must be an integer from 1 to");

        // The largest values in range: nothing there, and no wrap round.
        CHECK(get_json(cli, list + "?offset=" + kMaxInt64).empty());
        CHECK(get_json(cli, list + "?offset=1").empty());
        CHECK(get_json(cli, list + "?offset=0").size() == 1);
        json last = get_json(cli, list + "?page=922337203685477581&size=10");
        CHECK(last["items"].empty());
        CHECK(last["total"] == 1);
        CHECK(last["page"] == 922337203685477581LL);
        CHECK(get_json(cli, list + "?page=" + kMaxInt64 + "&size=1")["items"].empty());
    }
}

TEST_CASE("timeout_s and poll_interval beyond their ranges are 400; a huge wait is capped") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    for (const json &bad : {json(1e300), json(31536000.5), json(std::numeric_limits<uint64_t>::max())})
        check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", bad}}), 400,
                      "timeout_s must be a positive number of seconds, at most 31536000");
    // The largest in range is a timeout like any other.
    auto res = post_json(cli, "/api/v1/tasks/hello/$execute?wait=10", {{"timeout_s", 31536000}});
    REQUIRE_STATUS(res, 200);
    CHECK(body_json(res)["status"] == "completed");
    CHECK(body_json(res)["timeout_s"] == 31536000);

    for (const std::string bad : {"1e300", "86400.5", "18446744073709551615"}) {
        check_problem(cli.Get("/health/$stream?poll_interval=" + bad), 400,
                      "poll_interval must be a positive number of seconds, at most 86400");
        check_problem(cli.Get("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/$stream?poll_interval=" + bad), 400,
                      "poll_interval must be a positive number of seconds, at most 86400");
    }

    // ?wait= is capped at 60 s (documented), never overflowed: a
    // finished job answers at once whatever the wait.
    const std::string id = run_task(cli, "hello").job["id"];
    for (const std::string wait : {"1e300", "18446744073709551615", "1e308"}) {
        const auto started = std::chrono::steady_clock::now();
        REQUIRE_STATUS(cli.Get("/api/v1/jobs/" + id + "?wait=" + wait), 200);
        CHECK(std::chrono::steady_clock::now() - started < 5s);
    }
    check_problem(cli.Get("/api/v1/jobs/" + id + "?wait=1e999"), 400, "wait");
}

}  // TEST_SUITE("parameter ranges")
