// Job control and reliability: timeouts, progress, live status under load,
// backpressure, body limits, crash accounting and hostile input.
#include <atomic>
#include <cstdlib>
#include <set>
#include <thread>

#include "test_util.hpp"

using namespace th_test;

namespace {

std::vector<fs::path> examples_and(const std::string &fixture) {
    auto plugins = example_plugins();
    plugins.push_back(fixture_plugin(fixture));
    return plugins;
}

// Sends raw bytes on a fresh connection and returns everything the server
// answers until it closes (bounded by a receive timeout). The server may stop
// reading early; its answer still counts.
std::string raw_exchange(int port, const std::string &bytes) {
    RawConnection conn(port, std::chrono::seconds(5));
    conn.send(bytes);
    return conn.read_all();
}

int status_of(const std::string &raw) {
    if (raw.rfind("HTTP/1.1 ", 0) != 0 || raw.size() < 12) return 0;
    return std::stoi(raw.substr(9, 3));
}

}  // namespace

TEST_SUITE("reliability") {

TEST_CASE("timeouts: per request and SDK default; a task that ignores cancellation keeps its worker") {
    Service svc({examples_and("timeouts.so"), {"--max-concurrency", "2"}});
    auto &cli = svc.cli();

    // Per request, on a task that honours cancellation.
    auto res = post_json(cli, "/api/v1/tasks/slow_task/$execute", {{"params", {{"seconds", 30}}}, {"timeout_s", 0.2}});
    REQUIRE_STATUS(res, 202);
    json job = wait_job(cli, body_json(res)["job_id"], 10);
    CHECK(job["status"] == "failed");
    CHECK(job["error"] == "timed out after 0.2 s");
    CHECK(job["timeout_s"] == 0.2);
    CHECK(get_artifact(cli, job["result"])["data"]["error"]["message"] == "timed out after 0.2 s");

    // SDK default (0.3 s), cooperative task.
    job = wait_job(cli, submit(cli, "polite_sleep", {{"seconds", 30}}), 10);
    CHECK(job["status"] == "failed");
    CHECK(job["error"] == "timed out after 0.3 s");
    CHECK(get_json(cli, "/api/v1/tasks/polite_sleep")["timeout_s"] == 0.3);

    // A task that ignores cancellation: still running after its deadline,
    // visibly asked to stop, then failed as timed out when it returns.
    std::string id = submit(cli, "stubborn_sleep", {{"seconds", 1.5}});
    REQUIRE(eventually([&] { return get_job(cli, id)["cancel_requested"] == true; }));
    json mid = get_job(cli, id);
    if (mid["status"] == "running") CHECK(mid["finished_at"].is_null());
    job = wait_job(cli, id, 10);
    CHECK(job["status"] == "failed");
    CHECK(job["error"] == "timed out after 0.3 s");

    // Bad timeout values are refused up front.
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", -1}}), 400, "timeout_s");
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", {{"timeout_s", "soon"}}), 400, "timeout_s");
}

TEST_CASE("progress is visible in GET and in the stream") {
    Service svc;
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 0.6}});
    REQUIRE(eventually([&] {
        json j = get_job(cli, id);
        return j["progress"].is_number() && j["progress"].get<double>() > 0 && j["progress_message"] == "sleeping";
    }));
    auto sse = read_sse(cli, "/api/v1/jobs/" + id + "/$stream");
    REQUIRE(sse.status == 200);
    REQUIRE(sse.data.size() >= 2);
    bool saw_progress = false;
    double last = -1;
    for (const auto &d : sse.data) {
        json e = json::parse(d);
        if (e["progress"].is_number()) {
            saw_progress = true;
            CHECK(e["progress"].get<double>() >= last);  // events arrive in order
            last = e["progress"].get<double>();
        }
    }
    CHECK(saw_progress);
    json final = json::parse(sse.data.back());
    CHECK(final["status"] == "completed");
    CHECK(final["progress"] == 1.0);
}

TEST_CASE("20 open streams do not block other requests" * doctest::test_suite("concurrency")) {
    // Enough workers that the 20 watched jobs all run and others still can.
    Service svc({example_plugins(), {"--max-concurrency", "24"}});
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(submit(cli, "slow_task", {{"seconds", 60}}));
    std::vector<std::thread> streams;
    std::atomic<int> finished_ok{0};
    for (const auto &id : ids) {
        // No doctest assertions in these threads: count outcomes, check after join.
        streams.emplace_back([&, id] {
            auto c = svc.host().make_client();
            int status = 0;
            std::string raw;
            auto res = c->Get(("/api/v1/jobs/" + id + "/$stream").c_str(), httplib::Headers{},
                              [&](const httplib::Response &r) {
                                  status = r.status;
                                  return true;
                              },
                              [&](const char *data, size_t len) {
                                  raw.append(data, len);
                                  return true;
                              });
            if (res && status == 200 && contains(raw, "\"status\":\"canceled\"")) ++finished_ok;
        });
    }
    // While all 20 streams are open, ordinary requests are answered promptly.
    for (int i = 0; i < 20; ++i) {
        auto started = std::chrono::steady_clock::now();
        CHECK(get_json(cli, "/health")["status"] == "healthy");
        CHECK(run_task(cli, "greet_user", {{"name", "x"}}).job["status"] == "completed");
        CHECK(std::chrono::steady_clock::now() - started < 5s);
    }
    for (const auto &id : ids) {
        auto res = cli.Post(("/api/v1/jobs/" + id + "/$cancel").c_str());
        REQUIRE(res);
        CHECK((res->status == 200 || res->status == 202));
    }
    for (auto &t : streams) t.join();
    CHECK(finished_ok == 20);
}

TEST_CASE("backpressure: a full queue answers 503 with Retry-After and creates nothing") {
    Service svc({example_plugins(), {"--max-concurrency", "1", "--queue-size", "2"}});
    auto &cli = svc.cli();
    std::string running = submit(cli, "slow_task", {{"seconds", 30}});
    wait_status(cli, running, "running");
    submit(cli, "hello");
    submit(cli, "hello");
    size_t before = get_json(cli, "/api/v1/jobs").size();
    auto res = post_json(cli, "/api/v1/tasks/hello/$execute", json::object());
    check_problem(res, 503, "queue is full");
    // Nothing has ended yet: 30 s for each of the 2 queued (test_retry_after.cpp).
    CHECK(res->get_header_value("Retry-After") == "60");
    CHECK(get_json(cli, "/api/v1/jobs").size() == before);
    REQUIRE_STATUS(cli.Delete(("/api/v1/jobs/" + running).c_str()), 204);
    // Room again once the worker drains the queue.
    REQUIRE(eventually([&] {
        auto r = post_json(cli, "/api/v1/tasks/hello/$execute", json::object());
        return r && r->status == 202;
    }));
}

TEST_CASE("request bodies over the limit get 413") {
    Service svc({example_plugins(), {"--max-body-bytes", "4096"}});
    auto &cli = svc.cli();
    std::string big(8192, 'x');
    auto res = post_json(cli, "/api/v1/artifacts", {{"data", big}});
    REQUIRE(res);
    CHECK(res->status == 413);
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == 0);
    CHECK(get_json(cli, "/health")["status"] == "healthy");
}

TEST_CASE("crash: kill -9 under load, restart, and every acknowledged job is accounted for") {
    ServiceOptions options;
    options.extra = {"--max-concurrency", "2"};
    options.file_db = true;
    Service svc(options);
    auto &cli = svc.cli();
    std::vector<std::string> acknowledged;
    std::set<std::string> completed_before;
    for (int i = 0; i < 120; ++i) {
        const char *task = i % 3 == 0 ? "slow_task" : "greet_user";
        json params = i % 3 == 0 ? json{{"seconds", 0.05}} : json{{"name", std::to_string(i)}};
        acknowledged.push_back(submit(cli, task, params));
    }
    // Some have finished, some run, most wait: crash now.
    for (const auto &j : get_json(cli, "/api/v1/jobs?status_filter=completed&limit=1000"))
        completed_before.insert(j["id"].get<std::string>());
    svc.crash_and_restart({"--max-concurrency", "2"});
    auto &cli2 = svc.cli();

    int failed_by_crash = 0;
    for (const auto &id : acknowledged) {
        json job = wait_job(cli2, id, 30);  // present, and terminal after the restart
        if (job["status"] == "completed") {
            json artifact = get_artifact(cli2, job["result"]);
            CHECK(artifact["data"]["error"].is_null());
        } else {
            REQUIRE_MESSAGE(job["status"] == "failed", job.dump());
            CHECK_CONTAINS(job["error"].get<std::string>(), "host stopped");
            ++failed_by_crash;
        }
    }
    for (const auto &id : completed_before) CHECK(get_job(cli2, id)["status"] == "completed");
    CHECK(failed_by_crash <= 2);  // at most one per worker was running at the kill
    CHECK(get_json(cli2, "/api/v1/jobs?status_filter=running").empty());
    CHECK(get_json(cli2, "/api/v1/jobs?status_filter=pending").empty());
}

TEST_CASE("hostile input: every case is a 4xx problem, never a 5xx, crash or hang") {
    Service svc({examples_and("types.so"), {}});
    auto &cli = svc.cli();
    struct Case {
        std::string name, method, path, body;
        int status;
    };
    const std::string deep_array = std::string(100000, '[') + std::string(100000, ']');
    const std::string deep_params = R"({"params":{"j":)" + std::string(5000, '[') + std::string(5000, ']') + "}}";
    const std::vector<Case> cases = {
        {"malformed JSON", "POST", "/api/v1/tasks/add/$execute", R"({"params":)", 400},
        {"wrong type", "POST", "/api/v1/tasks/add/$execute", R"({"params":{"a":"1","b":2}})", 400},
        {"bool for int", "POST", "/api/v1/tasks/add/$execute", R"({"params":{"a":true,"b":2}})", 400},
        {"huge integer", "POST", "/api/v1/tasks/add/$execute", R"({"params":{"a":99999999999999999999999,"b":2}})",
         400},
        {"out-of-range int", "POST", "/api/v1/tasks/add/$execute", R"({"params":{"a":4294967296,"b":2}})", 400},
        {"huge exponent", "POST", "/api/v1/tasks/add/$execute", R"({"params":{"a":1e400,"b":2}})", 400},
        {"deep nesting", "POST", "/api/v1/tasks/add/$execute", deep_array, 400},
        {"deep nesting in params", "POST", "/api/v1/artifacts", deep_params, 400},
        {"invalid UTF-8", "POST", "/api/v1/tasks/greet_user/$execute", "{\"params\":{\"name\":\"\xff\xfe\"}}", 400},
        {"params not an object", "POST", "/api/v1/tasks/add/$execute", R"({"params":"a=1"})", 400},
        {"body not an object", "POST", "/api/v1/tasks/add/$execute", "[1,2]", 400},
        {"artifact body a string", "POST", "/api/v1/artifacts", "\"x\"", 400},
        {"invalid ULID (artifact)", "GET", "/api/v1/artifacts/01ARZ3NDEKTSV4RRFFQ69G5FAu", "", 400},
        {"ULID out of range", "GET", "/api/v1/artifacts/81ARZ3NDEKTSV4RRFFQ69G5FAV", "", 400},
        {"invalid ULID (job)", "GET", "/api/v1/jobs/..", "", 404},
        {"invalid ULID (stream)", "GET", "/api/v1/jobs/not-a-ulid/$stream", "", 400},
        {"path traversal", "GET", "/api/v1/tasks/..%2F..%2Fetc%2Fpasswd", "", 404},
        {"encoded NUL in name", "POST", "/api/v1/tasks/add%00/$execute", "{}", 404},
        {"dot segments", "GET", "/api/v1/../../etc/passwd", "", 404},
        {"trailing slash", "GET", "/api/v1/tasks/", "", 404},
        {"unknown route", "GET", "/api/v2/tasks", "", 404},
        {"wrong method", "DELETE", "/api/v1/tasks", "", 405},
        {"wrong method on execute", "GET", "/api/v1/tasks/add/$execute", "", 405},
        {"negative page", "GET", "/api/v1/artifacts?page=-1&size=3", "", 400},
        {"huge limit", "GET", "/api/v1/jobs?limit=99999999999999999999", "", 400},
        {"bad status filter", "GET", "/api/v1/jobs?status_filter=%00", "", 400},
        {"bad wait", "GET", "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=NaN", "", 400},
    };
    for (const auto &c : cases) {
        CAPTURE(c.name);
        httplib::Result res = c.method == "GET"      ? cli.Get(c.path.c_str())
                              : c.method == "DELETE" ? cli.Delete(c.path.c_str())
                                                     : cli.Post(c.path.c_str(), c.body, "application/json");
        check_problem(res, c.status);
    }

    // Requests cpp-httplib itself rejects, sent raw.
    int port = svc.host().port();
    CHECK(status_of(raw_exchange(port, "FOO /api/v1/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) / 100 ==
          4);
    CHECK(status_of(raw_exchange(port, "this is not http\r\n\r\n")) / 100 == 4);
    CHECK(status_of(raw_exchange(port, "GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                                           "\r\nConnection: close\r\n\r\n")) /
              100 ==
          4);
    CHECK(status_of(raw_exchange(
              port, "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 414);
    // No body bytes follow: the host refuses on the header alone, and a body
    // it never reads would make its close a reset that can destroy the 413
    // before the client reads it (seen once under ASan).
    CHECK(status_of(raw_exchange(port,
                                 "POST /api/v1/tasks/add/$execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                                 "99999999999\r\nConnection: close\r\n\r\n")) == 413);

    // And the host is still fine.
    CHECK(svc.host().is_alive());
    CHECK(get_json(cli, "/health")["status"] == "healthy");
    CHECK(run_task(cli, "add", {{"a", 1}, {"b", 2}}).artifact["data"]["result"]["result"] == 3);
}

TEST_CASE("a store that cannot write: a 503 that says why at once, /health unhealthy until commits work again") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db());
    auto &cli = svc.cli();
    run_task(cli, "hello");
    // Scheduled, so still cancellable once nothing can be written.
    auto made = post_json(cli, "/api/v1/tasks/hello/$execute", {{"delay_s", 3600}});
    REQUIRE(made);
    REQUIRE(made->status == 202);
    const std::string later = body_json(made)["job_id"].get<std::string>();
    const std::string prlimit = "prlimit --pid " + std::to_string(svc.host().pid()) + " --fsize=";
    // From now on no file can grow past 4 KiB, so no WAL frame can be
    // written (EFBIG, as on a full disk); SIGXFSZ must not kill the host.
    REQUIRE(std::system((prlimit + "4096:unlimited").c_str()) == 0);
    for (const std::string path : {"/api/v1/tasks/hello/$execute?wait=10", "/api/v1/tasks/hello/$execute"}) {
        CAPTURE(path);
        const auto started = std::chrono::steady_clock::now();
        json p = check_problem(cli.Post(path, "{}", "application/json"), 503, "could not be stored");
        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));  // not at the end of the wait
        CHECK_FALSE(contains(p["detail"].get<std::string>(), "within 60 s"));  // told why, not timed out
    }
    // A cancel is not "done" (200) unless it is stored.
    check_problem(cli.Post(("/api/v1/jobs/" + later + "/$cancel").c_str(), "", "application/json"), 503,
                  "The cancel could not be stored");
    // Asked again: not "already finished", which it is not.
    check_problem(cli.Post(("/api/v1/jobs/" + later + "/$cancel").c_str(), "", "application/json"), 503,
                  "it stays scheduled until the host is restarted");
    json h = get_json(cli, "/health");
    CHECK(h["status"] == "unhealthy");
    CHECK(contains(h["checks"]["database"]["message"].get<std::string>(), "the last commit failed"));
    CHECK(svc.host().is_alive());

    REQUIRE(std::system((prlimit + "unlimited:unlimited").c_str()) == 0);
    // A health check queues a small commit while unhealthy; once one lands
    // it is healthy, with no other traffic.
    CHECK(eventually([&] { return get_json(cli, "/health")["status"] == "healthy"; }));
    CHECK(run_task(cli, "hello").job["status"] == "completed");
}

}  // TEST_SUITE("reliability")
