// Parallel clients, list completeness and paging. (Queue-full 503, body
// size 413 and timeouts are covered in test_reliability.cpp.)
#include "test_util.hpp"

#include <atomic>
#include <mutex>
#include <thread>

using namespace th_test;

TEST_SUITE("limits") {

TEST_CASE("parallel clients: every submission is accepted and computed correctly") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    constexpr int kThreads = 4, kPerThread = 25;
    std::mutex mu;
    std::vector<std::pair<std::string, int>> submitted;  // job id, expected sum
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            auto cli = svc.host().make_client();
            for (int i = 0; i < kPerThread; ++i) {
                int a = t * 1000 + i, b = i;
                auto res = cli->Post("/api/v1/tasks/add/$execute", json{{"params", {{"a", a}, {"b", b}}}}.dump(),
                                     "application/json");
                if (!res || res->status != 202) {
                    ++errors;
                    continue;
                }
                json j = json::parse(res->body, nullptr, false);
                std::lock_guard lock(mu);
                submitted.emplace_back(j.value("job_id", ""), a + b);
            }
        });
    }
    for (auto &t : threads) t.join();
    CHECK(errors == 0);
    REQUIRE(submitted.size() == kThreads * kPerThread);
    auto &cli = svc.cli();
    for (const auto &[id, sum] : submitted) {
        json job = wait_job(cli, id);
        REQUIRE(job["status"] == "completed");
        CHECK(get_artifact(cli, job["artifact_id"])["data"]["result"] == json{{"result", sum}});
    }
}

TEST_CASE("lists are bounded: 100 by default, the rest by limit/offset and a Link to the next page") {
    // A deliberate difference from the original (README): an unpaged list is
    // capped so a million rows never build one response.
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    constexpr int kCount = 120;
    std::vector<std::string> artifact_ids;
    for (int i = 0; i < kCount; ++i) {
        auto res = post_json(cli, "/api/v1/artifacts", {{"data", {{"i", i}}}});
        REQUIRE_STATUS(res, 201);
        artifact_ids.push_back(body_json(res)["id"]);
    }
    auto first = cli.Get("/api/v1/artifacts");
    REQUIRE_STATUS(first, 200);
    json artifacts = body_json(first);
    REQUIRE(artifacts.size() == 100);
    CHECK(artifacts[0]["id"] == artifact_ids[0]);  // insertion order
    CHECK(first->get_header_value("Link") == "</api/v1/artifacts?limit=100&offset=100>; rel=\"next\"");
    auto rest = cli.Get("/api/v1/artifacts?limit=100&offset=100");
    REQUIRE_STATUS(rest, 200);
    CHECK(body_json(rest).size() == kCount - 100);
    CHECK(body_json(rest)[0]["id"] == artifact_ids[100]);
    CHECK_FALSE(rest->has_header("Link"));  // the last page
    CHECK(get_json(cli, "/api/v1/artifacts?limit=1000").size() == kCount);
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == kCount);

    std::vector<std::string> job_ids;
    for (int i = 0; i < kCount; ++i) job_ids.push_back(submit(cli, "hello"));
    for (const auto &id : job_ids) wait_job(cli, id);
    auto jobs = cli.Get("/api/v1/jobs?status_filter=completed");
    REQUIRE_STATUS(jobs, 200);
    CHECK(body_json(jobs).size() == 100);
    CHECK(body_json(jobs)[0]["id"] == job_ids.back());  // newest first
    CHECK(jobs->get_header_value("Link") ==
          "</api/v1/jobs?status_filter=completed&limit=100&offset=100>; rel=\"next\"");
    CHECK(get_json(cli, "/api/v1/jobs?limit=1000").size() == kCount);
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=completed&offset=100").size() == kCount - 100);
    check_problem(cli.Get("/api/v1/jobs?limit=1001"), 400, "limit");
}

TEST_CASE("jobs paging: ?page=&size= answers an envelope, newest first") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(submit(cli, "hello"));
    for (const auto &id : ids) wait_job(cli, id);
    json p1 = get_json(cli, "/api/v1/jobs?page=1&size=2");
    REQUIRE(p1["items"].size() == 2);
    CHECK(p1["items"][0]["id"] == ids[4]);
    CHECK(p1["items"][1]["id"] == ids[3]);
    CHECK(p1["total"] == 5);
    CHECK(p1["page"] == 1);
    CHECK(p1["size"] == 2);
    CHECK(p1["pages"] == 3);
    json p3 = get_json(cli, "/api/v1/jobs?page=3&size=2");
    REQUIRE(p3["items"].size() == 1);
    CHECK(p3["items"][0]["id"] == ids[0]);
    check_problem(cli.Get("/api/v1/jobs?page=0&size=2"), 400);
}

}  // TEST_SUITE("limits")
