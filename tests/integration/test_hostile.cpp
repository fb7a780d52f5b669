// Plugins that misbehave: the host stays up and honest, and each job that
// met the misbehaviour fails with an error that says what happened.
#include "test_util.hpp"

using namespace th_test;

namespace {

ServiceOptions with_fixtures(std::vector<std::string> files) {
    ServiceOptions o = ServiceOptions::examples({});
    for (const auto &f : files) o.with_plugin(fixture_plugin(f));
    return o;
}

}  // namespace

TEST_SUITE("hostile plugins") {

TEST_CASE("a result over --max-result-bytes fails its job; nothing big is stored") {
    Service svc(with_fixtures({"results.so"}).flags({"--max-result-bytes", "4096"}));
    auto &cli = svc.cli();
    auto done = run_task(cli, "big_result", {{"bytes", 100000}}, "failed");
    CHECK_CONTAINS(done.job["error"].get<std::string>(),
                   "taskhost::ResultTooLarge: the result is 100014 bytes, more than the host accepts (4096 bytes, "
                   "--max-result-bytes)");
    CHECK(done.artifact["data"]["result"].is_null());
    CHECK(done.artifact.dump().size() < 4096);
    // Under the limit: taken as usual.
    CHECK(run_task(cli, "big_result", {{"bytes", 1000}})
              .artifact["data"]["result"]["padding"]
              .get<std::string>()
              .size() == 1000);
    // An artifact the task saves is held to the same limit.
    auto saved = run_task(cli, "big_artifact", {{"bytes", 100000}}, "failed");
    CHECK_CONTAINS(saved.job["error"].get<std::string>(),
                   "artifact data is 100002 bytes, more than the host accepts (4096 bytes, --max-result-bytes)");
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == 3);  // the three result artifacts only
}

TEST_CASE("invalid UTF-8 in a result fails its job instead of being replaced") {
    Service svc(with_fixtures({"results.so"}));
    auto done = run_task(svc.cli(), "bad_utf8", json::object(), "failed");
    CHECK(done.job["error"] ==
          "taskhost::InvalidUtf8: the result holds a string that is not valid UTF-8 (invalid UTF-8 byte at index 3: "
          "0xFF)");
    CHECK(done.artifact["data"]["result"].is_null());
}

TEST_CASE("a C plugin's result that is not JSON fails its job, saying where") {
    Service svc(with_fixtures({"raw_result.so"}));
    auto done = run_task(svc.cli(), "not_json", json::object(), "failed");
    CHECK(done.job["error"] ==
          "taskhost::InvalidResult: the task returned text that is not valid JSON: parse error at line 1, column 27: "
          "syntax error while parsing value - invalid literal; last read: '\"oops\": tru}'");
}

}  // TEST_SUITE("hostile plugins")
