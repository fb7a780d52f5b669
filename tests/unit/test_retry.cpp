// Retry policies: the waits between attempts, a submit's override, and the
// attempt log as stored and as shown.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "model/retry.hpp"

using namespace taskhost::model;
using nlohmann::json;

TEST_CASE("retry waits: fixed, exponential up to its cap, and jitter within ±20 % (still capped)") {
    RetryPolicy fixed{5, Backoff::fixed, 2.5, 3600, false};
    for (int n = 1; n <= 4; ++n) CHECK(retry_delay_us(fixed, n, 0.9) == 2'500'000);

    RetryPolicy doubling{10, Backoff::exponential, 1, 5, false};
    CHECK(retry_delay_us(doubling, 1, 0.5) == 1'000'000);
    CHECK(retry_delay_us(doubling, 2, 0.5) == 2'000'000);
    CHECK(retry_delay_us(doubling, 3, 0.5) == 4'000'000);
    CHECK(retry_delay_us(doubling, 4, 0.5) == 5'000'000);     // capped
    CHECK(retry_delay_us(doubling, 1000, 0.5) == 5'000'000);  // no overflow

    RetryPolicy jittered{10, Backoff::exponential, 1, 5, true};
    CHECK(retry_delay_us(jittered, 1, 0.0) == 800'000);
    CHECK(retry_delay_us(jittered, 1, 0.5) == 1'000'000);
    CHECK(retry_delay_us(jittered, 1, 0.999999) == doctest::Approx(1'200'000).epsilon(0.001));
    CHECK(retry_delay_us(jittered, 3, 0.0) == 3'200'000);
    CHECK(retry_delay_us(jittered, 3, 0.99) == 4'784'000);
    CHECK(retry_delay_us(jittered, 9, 0.99) == 5'000'000);  // jitter above the cap is cut to it

    RetryPolicy zero{3, Backoff::fixed, 0, 0, true};
    CHECK(retry_delay_us(zero, 2, 0.7) == 0);
}

TEST_CASE("a submit's retry: members replace the task's; wrong ones are named and change nothing") {
    RetryPolicy task{4, Backoff::exponential, 0.5, 60, true};
    RetryPolicy p = task;
    CHECK(!apply_retry_json(json{{"max_attempts", 7}, {"jitter", false}}, p));
    CHECK(p == RetryPolicy{7, Backoff::exponential, 0.5, 60, false});
    p = task;
    CHECK(!apply_retry_json(json{{"backoff", "fixed"}, {"delay_s", 0}, {"max_delay_s", 604800}}, p));
    CHECK(p == RetryPolicy{4, Backoff::fixed, 0, 604800, true});
    p = task;
    CHECK(!apply_retry_json(json{{"max_attempts", 3.0}}, p));  // as JSON Schema's integer
    CHECK(p.max_attempts == 3);
    p = task;
    CHECK(!apply_retry_json(json::object(), p));
    CHECK(p == task);

    const std::pair<json, std::string> wrong[] = {
        {json::array(), "\"retry\" must be an object"},
        {json{{"max_attempts", 0}}, "\"retry\".max_attempts must be an integer from 1 to 100"},
        {json{{"max_attempts", 101}}, "\"retry\".max_attempts"},
        {json{{"max_attempts", "3"}}, "\"retry\".max_attempts"},
        {json{{"backoff", "linear"}}, "\"retry\".backoff must be \"fixed\" or \"exponential\""},
        {json{{"delay_s", -0.1}}, "\"retry\".delay_s must be a number of seconds from 0 to 604800"},
        {json{{"max_delay_s", 604801}}, "\"retry\".max_delay_s"},
        {json{{"jitter", 1}}, "\"retry\".jitter must be true or false"},
        {json{{"max_attempts", 3}, {"when", "always"}}, "unknown member \"retry\".when"},
    };
    for (const auto &one : wrong) {  // not a structured binding: CAPTURE's lambda takes it (clang 14)
        const json &given = one.first;
        const std::string &says = one.second;
        CAPTURE(given.dump());
        p = task;
        auto why = apply_retry_json(given, p);
        REQUIRE(why);
        CHECK(why->find(says) != std::string::npos);
        CHECK(p == task);
    }
}

TEST_CASE("a stored policy reads back; an unreadable one is the base") {
    RetryPolicy p{9, Backoff::fixed, 3, 7, false};
    CHECK(parse_stored_retry(render_retry(p)) == p);
    CHECK(parse_stored_retry("") == RetryPolicy{});
    CHECK(parse_stored_retry("not json") == RetryPolicy{});
    CHECK(parse_stored_retry(R"({"max_attempts": 0})") == RetryPolicy{});
}

TEST_CASE("the attempt log: appended as stored, shown with RFC 3339 times, long errors cut at a character") {
    std::string log = append_attempt("", {1, 1'700'000'000'000'000, 1'700'000'000'500'000, "boom", ""});
    log = append_attempt(log, {2, 1'700'000'001'000'000, 1'700'000'001'250'000, std::string(5000, 'x'), "host-a"});
    const json stored = json::parse(log);
    REQUIRE(stored.size() == 2);
    CHECK(stored[0]["started_at"] == 1'700'000'000'000'000);
    CHECK(!stored[0].contains("run_by"));
    CHECK(stored[1]["error"].get<std::string>().size() <= kMaxAttemptError + 3);  // and "…"

    std::string shown;
    render_attempt_log(shown, log);
    const json out = json::parse(shown);
    REQUIRE(out.size() == 2);
    CHECK(out[0] == json{{"attempt", 1},
                         {"started_at", "2023-11-14T22:13:20.000000Z"},
                         {"finished_at", "2023-11-14T22:13:20.500000Z"},
                         {"error", "boom"},
                         {"run_by", nullptr}});
    CHECK(out[1]["run_by"] == "host-a");
    CHECK(shown.find("\"attempt\":1,\"started_at\"") != std::string::npos);  // in this order

    // A multi-byte character at the cut is kept whole or dropped, never split.
    std::string wide(kMaxAttemptError - 1, 'a'), expected(kMaxAttemptError - 1, 'a');
    wide.append("é");
    expected.append("…");
    const json cut = json::parse(append_attempt("", {1, 1, 2, wide, ""}));
    CHECK(cut[0]["error"] == expected);

    std::string none;
    render_attempt_log(none, "");
    CHECK(none == "[]");
}
