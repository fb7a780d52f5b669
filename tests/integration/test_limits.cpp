// Bounds and less common paths: full queue (503), body size (413), job
// timeouts, parallel clients, list completeness and paging.
#include "test_util.hpp"

#include <atomic>
#include <mutex>

using namespace th_test;

TEST_SUITE("limits") {

TEST_CASE("a full queue answers 503 with Retry-After and accepts again once drained") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "1", "--queue-size", "1"}));
    auto &cli = svc.cli();
    std::string running = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, running, "running");
    std::string queued = submit(cli, "hello");  // fills the one queue slot
    auto res = post_json(cli, "/api/v1/tasks/hello/$execute", json::object());
    json p = check_problem(res, 503, "queue is full");
    CHECK(res->get_header_value("Retry-After") == "1");
    CHECK(get_json(cli, "/api/v1/jobs").size() == 2);  // the refused one was not stored
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + running).c_str()), 204);
    CHECK(wait_job(cli, queued)["status"] == "completed");
    CHECK(run_task(cli, "hello").job["status"] == "completed");
}

TEST_CASE("a body larger than --max-body-bytes → 413 problem+json") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-body-bytes", "2048"}));
    auto &cli = svc.cli();
    std::string big(4096, 'x');
    auto res = post_json(cli, "/api/v1/artifacts", {{"data", big}});
    check_problem(res, 413);
    // Just under the limit is fine.
    REQUIRE_STATUS(post_json(cli, "/api/v1/artifacts", {{"data", std::string(1000, 'y')}}), 201);
}

TEST_CASE("timeout_s: a job that runs too long fails with a timeout error") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    auto res = post_json(cli, "/api/v1/tasks/slow_task/$execute", {{"params", {{"seconds", 30}}}, {"timeout_s", 0.2}});
    REQUIRE_STATUS(res, 202);
    std::string id = body_json(res)["job_id"];
    auto t0 = std::chrono::steady_clock::now();
    json job = wait_job(cli, id, 10);
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    CHECK(job["status"] == "failed");
    REQUIRE(job["error"].is_string());
    CHECK_CONTAINS(job["error"].get<std::string>(), "timed out");
    CHECK(job["timeout_s"] == 0.2);
    // A fast job under a timeout completes normally.
    res = post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", 5}});
    REQUIRE_STATUS(res, 202);
    CHECK(wait_job(cli, body_json(res)["job_id"])["status"] == "completed");
    // Nonsense timeouts are refused.
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", -1}}), 400, "timeout_s");
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", "soon"}}), 400, "timeout_s");
}

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
                auto res = cli->Post("/api/v1/tasks/add/$execute",
                                     json{{"params", {{"a", a}, {"b", b}}}}.dump(), "application/json");
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

TEST_CASE("lists without paging return everything") {
    // The original answers the whole list unless both page and size are given.
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    constexpr int kCount = 120;
    std::vector<std::string> artifact_ids;
    for (int i = 0; i < kCount; ++i) {
        auto res = post_json(cli, "/api/v1/artifacts", {{"data", {{"i", i}}}});
        REQUIRE_STATUS(res, 201);
        artifact_ids.push_back(body_json(res)["id"]);
    }
    json artifacts = get_json(cli, "/api/v1/artifacts");
    CHECK(artifacts.size() == kCount);
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == kCount);

    std::vector<std::string> job_ids;
    for (int i = 0; i < kCount; ++i) job_ids.push_back(submit(cli, "hello"));
    for (const auto &id : job_ids) wait_job(cli, id);
    json jobs = get_json(cli, "/api/v1/jobs");
    CHECK(jobs.size() == kCount);
    CHECK(get_json(cli, "/api/v1/jobs?status_filter=completed").size() == kCount);
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

}  // TEST_SUITE
