// GET /api/v1/jobs/{id}/$stream (server-sent events).
#include "test_util.hpp"

#include <atomic>
#include <mutex>

using namespace th_test;

TEST_SUITE("stream") {

TEST_CASE("$stream on a finished job: headers, one event, completed with artifact_id") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    auto done = run_task(cli, "greet_user", {{"name", "Alice"}});
    std::string id = done.job["id"];
    SseResult sse = read_sse(cli, "/api/v1/jobs/" + id + "/$stream");
    CHECK(sse.status == 200);
    CHECK(sse.content_type == "text/event-stream");
    CHECK(sse.cache_control == "no-cache");
    CHECK(sse.connection == "keep-alive");
    auto events = sse_events(sse);
    REQUIRE(events.size() >= 1);
    const json &last = events.back();
    CHECK(last["id"] == id);
    CHECK(last["status"] == "completed");
    CHECK(last["artifact_id"] == done.job["artifact_id"]);
    CHECK(is_ulid(last["artifact_id"]));
    // Events are separated by a blank line.
    CHECK_CONTAINS(sse.raw, "\n\n");
}

TEST_CASE("streams are not compressed: a browser's Accept-Encoding does not hold events back") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    const httplib::Headers browser{{"Accept-Encoding", "gzip, deflate, br"}};
    // Compressed, the first event would only arrive when the job ends.
    std::string id = submit(cli, "slow_task", {{"seconds", 60}});
    const auto started = std::chrono::steady_clock::now();
    SseResult sse = read_sse(cli, "/api/v1/jobs/" + id + "/$stream", 1, browser);
    CHECK(std::chrono::steady_clock::now() - started < 20s);
    CHECK(sse.content_encoding.empty());
    CHECK(sse.content_type == "text/event-stream");
    auto events = sse_events(sse);
    REQUIRE(events.size() == 1);
    CHECK(events[0]["id"] == id);
    CHECK(events[0]["status"] != "completed");
    SseResult health = read_sse(cli, "/health/$stream?poll_interval=30", 1, browser);
    CHECK(health.content_encoding.empty());
    REQUIRE(sse_events(health).size() == 1);
    // JSON answers are still compressed for such a client.
    auto list = cli.Get("/api/v1/tasks", browser);
    REQUIRE_STATUS(list, 200);
    CHECK_FALSE(list->get_header_value("Content-Encoding").empty());
    REQUIRE(cli.Post("/api/v1/jobs/" + id + "/$cancel"));
}

TEST_CASE("$stream on a running job: several events, the last completed") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 0.5}});
    SseResult sse = read_sse(cli, "/api/v1/jobs/" + id + "/$stream");
    CHECK(sse.status == 200);
    auto events = sse_events(sse);
    REQUIRE(events.size() >= 2);
    std::string first = events.front().value("status", "");
    CHECK_MESSAGE((first == "pending" || first == "running"), "first event: " << events.front().dump());
    CHECK(events.back()["status"] == "completed");
    CHECK(is_ulid(events.back()["artifact_id"]));
    for (const auto &e : events) CHECK(e["id"] == id);
    // Only the last event is terminal.
    for (size_t i = 0; i + 1 < events.size(); ++i) CHECK_FALSE(is_terminal(events[i].value("status", "")));
}

TEST_CASE("$stream with an invalid id → 400, unknown id → 404") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json p = check_problem(cli.Get("/api/v1/jobs/invalid-ulid/$stream"), 400);
    CHECK(p["detail"] == "Invalid job ID format");
    check_problem(cli.Get("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999/$stream"), 404, "Job not found");
}

TEST_CASE("$stream: poll_interval is accepted, and a malformed one is a 400 as on /health/$stream") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json done = run_task(cli, "hello").job;
    const std::string path = "/api/v1/jobs/" + done["id"].get<std::string>() + "/$stream";
    for (const char *bad : {"abc", "0", "-1", ""}) {
        CAPTURE(bad);
        check_problem(cli.Get(path + "?poll_interval=" + bad), 400, "poll_interval must be a positive number");
    }
    SseResult sse = read_sse(cli, path + "?poll_interval=0.1");
    CHECK(sse.status == 200);
    REQUIRE(sse_events(sse).size() == 1);
    CHECK(sse_events(sse)[0]["status"] == "completed");
}

TEST_CASE("$stream on a failing job: last event failed") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "failing_task");
    SseResult sse = read_sse(cli, "/api/v1/jobs/" + id + "/$stream");
    auto events = sse_events(sse);
    REQUIRE(events.size() >= 1);
    CHECK(events.back()["status"] == "failed");
    REQUIRE(events.back()["error"].is_string());
    CHECK_CONTAINS(events.back()["error"].get<std::string>(), "std::invalid_argument");
}

TEST_CASE("DELETE while a $stream is open ends it with a deleted event") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, id, "running");

    std::mutex mu;
    std::string raw;
    std::atomic<bool> got_first{false}, finished{false};
    int status = 0;
    auto stream_client = svc.host().make_client();
    std::thread reader([&] {
        auto res = stream_client->Get(("/api/v1/jobs/" + id + "/$stream").c_str(), httplib::Headers{},
                                      [&](const httplib::Response &r) {
                                          status = r.status;
                                          return true;
                                      },
                                      [&](const char *data, size_t len) {
                                          std::lock_guard lock(mu);
                                          raw.append(data, len);
                                          if (raw.find("\n\n") != std::string::npos) got_first = true;
                                          return true;
                                      });
        (void)res;
        finished = true;
    });
    bool first = eventually([&] { return got_first.load(); }, 5000ms);
    CHECK(first);
    auto del = cli.Delete(("/api/v1/jobs/" + id).c_str());
    CHECK_STATUS(del, 204);
    bool ended = eventually([&] { return finished.load(); }, 5000ms);
    CHECK_MESSAGE(ended, "the stream did not end after DELETE");
    if (!ended) stream_client->stop();
    reader.join();
    CHECK(status == 200);
    std::lock_guard lock(mu);
    INFO(raw);
    // The last event is the deletion notice.
    std::string tail = raw;
    while (!tail.empty() && (tail.back() == '\n')) tail.pop_back();
    size_t last_line = tail.rfind('\n');
    std::string last = last_line == std::string::npos ? tail : tail.substr(last_line + 1);
    CHECK(last == "data: {\"status\": \"deleted\"}");
}

}  // TEST_SUITE("stream")
