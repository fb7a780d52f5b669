// /health, /health/$stream, /ping, /api/v1/info, /api/v1/system, shutdown, routing errors, problem shape.
#include "test_util.hpp"

#include <sys/wait.h>

#include <atomic>
#include <thread>

using namespace th_test;

TEST_SUITE("system") {

TEST_CASE("/health: healthy with a database check") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto res = svc.cli().Get("/health");
    REQUIRE_STATUS(res, 200);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    CHECK(body_json(res) == json{{"status", "healthy"}, {"checks", {{"database", {{"state", "healthy"}}}}}});
}

TEST_CASE("/health with a file database") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db());
    json h = get_json(svc.cli(), "/health");
    CHECK(h["status"] == "healthy");
    CHECK(h["checks"]["database"]["state"] == "healthy");
}

TEST_CASE("/health/$stream: SSE headers, an event per poll_interval, each healthy") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db());
    SseResult h = read_sse(svc.cli(), "/health/$stream?poll_interval=0.1", 3);
    CHECK(h.status == 200);
    CHECK(h.content_type == "text/event-stream");
    CHECK(h.cache_control == "no-cache");
    CHECK(h.connection == "keep-alive");
    auto events = sse_events(h);
    REQUIRE(events.size() == 3);
    for (const auto &e : events) {
        CHECK(e == json{{"status", "healthy"}, {"checks", {{"database", {{"state", "healthy"}}}}}});
    }
    // The default interval (1 s) answers too.
    CHECK(read_sse(svc.cli(), "/health/$stream", 1).data.size() == 1);
    // A client that asks to close gets one Connection header, not two.
    httplib::Client closing("127.0.0.1", svc.host().port());
    closing.set_default_headers({{"Connection", "close"}});
    SseResult c = read_sse(closing, "/health/$stream", 1);
    CHECK(c.connection == "close");
    CHECK(c.connection_headers == 1);
}

TEST_CASE("/health/$stream: a malformed poll_interval → 400") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    for (std::string bad : {"abc", "0", "-1", "1e999", ""}) {
        CAPTURE(bad);
        json p = check_problem(svc.cli().Get(("/health/$stream?poll_interval=" + bad).c_str()), 400);
        CHECK(p["detail"] == "poll_interval must be a positive number of seconds, at most 86400");
    }
    check_problem(svc.cli().Post("/health/$stream", "", "application/json"), 405);
}

TEST_CASE("SIGTERM ends an open /health/$stream instead of waiting for its next event" *
          doctest::test_suite("concurrency")) {
    Service svc(ServiceOptions::examples({"demo.so"}));
    std::atomic<bool> first_event{false};
    std::thread reader([&] {
        httplib::Client cli("127.0.0.1", svc.host().port());
        cli.set_read_timeout(60, 0);
        cli.Get("/health/$stream?poll_interval=3600", httplib::Headers{}, [&](const char *, size_t) {
            first_event = true;
            return true;
        });
    });
    REQUIRE(eventually([&] { return first_event.load(); }));
    int status = svc.host().stop(10000ms);  // an hour before its next event
    reader.join();
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("SIGTERM answers open job streams and ?wait long-polls at once" * doctest::test_suite("concurrency")) {
    // polite_sleep reports nothing while it runs: without the shutdown
    // release, the stream would wait 15 s for its next event and the
    // long-polls 60 s for their deadline, past the 10 s grace below.
    Service svc(ServiceOptions::examples({"demo.so"}).with_plugin(fixture_plugin("timeouts.so")));
    const json quiet = {{"params", {{"seconds", 60}}}, {"timeout_s", 120}};
    auto sub = post_json(svc.cli(), "/api/v1/tasks/polite_sleep/$execute", quiet);
    REQUIRE_STATUS(sub, 202);
    std::string id = body_json(sub)["job_id"];
    wait_status(svc.cli(), id, "running");

    std::atomic<int> started{0};
    std::string stream_text;
    int poll_status = 0, execute_status = 0;
    json poll_body;
    std::thread stream([&] {
        httplib::Client cli("127.0.0.1", svc.host().port());
        cli.set_read_timeout(120, 0);
        cli.Get(("/api/v1/jobs/" + id + "/$stream").c_str(), httplib::Headers{}, [&](const char *d, size_t n) {
            if (stream_text.empty()) ++started;
            stream_text.append(d, n);
            return true;
        });
    });
    std::thread poll([&] {
        httplib::Client cli("127.0.0.1", svc.host().port());
        cli.set_read_timeout(120, 0);
        ++started;
        auto res = cli.Get(("/api/v1/jobs/" + id + "?wait=60").c_str());
        if (res) {
            poll_status = res->status;
            poll_body = json::parse(res->body, nullptr, false);
        }
    });
    std::thread execute([&] {
        httplib::Client cli("127.0.0.1", svc.host().port());
        cli.set_read_timeout(120, 0);
        ++started;
        auto res = cli.Post("/api/v1/tasks/polite_sleep/$execute?wait=60", quiet.dump(), "application/json");
        if (res) execute_status = res->status;
    });
    REQUIRE(eventually([&] { return started.load() == 3; }));
    // All three are inside the host, waiting on a job.
    REQUIRE(eventually([&] { return get_json(svc.cli(), "/api/v1/system")["waiting_requests"] == 3; }));
    int status = svc.host().stop(10000ms);
    stream.join();
    poll.join();
    execute.join();
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_CONTAINS(stream_text, "\"status\":\"running\"");
    CHECK(poll_status == 200);  // the long-poll's usual answer: the job as it is now
    CHECK(poll_body.value("id", "") == id);
    CHECK(execute_status == 202);  // not finished within the wait
}

TEST_CASE("/ping") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    json p = get_json(svc.cli(), "/ping");
    CHECK(p["status"] == "ok");
    CHECK(p["service"] == "taskhost");
}

TEST_CASE("--version names the same version as /api/v1/info, and the library versions") {
    auto [code, out] = run_host_to_exit("--version");
    CHECK(code == 0);
    Service svc(ServiceOptions::examples({"demo.so"}));
    const std::string version = get_json(svc.cli(), "/api/v1/info")["version"];
    CHECK(out.rfind("taskhost " + version + " (plugin ABI 1.", 0) == 0);
    CHECK(contains(out, "SQLite 3."));
    CHECK(contains(out, "cpp-httplib "));
}

TEST_CASE("/api/v1/info") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    json info = get_json(svc.cli(), "/api/v1/info");
    CHECK(info["display_name"] == "taskhost");
    CHECK(info["version"].is_string());
    CHECK_FALSE(info["version"].get<std::string>().empty());
    CHECK(info["summary"].is_string());
    CHECK(info["description"].is_string());
    CHECK(info.contains("contact"));
    CHECK(info.contains("license_info"));
}

TEST_CASE("/api/v1/system") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "3"}));
    json s = get_json(svc.cli(), "/api/v1/system");
    CHECK(is_iso_utc(s["current_time"]));
    CHECK(s["timezone"] == "UTC");
    CHECK(s["platform"].is_string());
    CHECK(s["hostname"].is_string());
    CHECK(s["pid"] == svc.host().pid());
    CHECK(s["workers"] == 3);
    CHECK(s["jobs_running"] == 0);
    CHECK(s["jobs_queued"] == 0);
    CHECK(s["waiting_requests"] == 0);
    CHECK(s["database"] == "sqlite://:memory:");
    CHECK(s["sync"] == "none");  // a memory database survives nothing
    for (const char *key : {"commits", "writes", "checkpoints", "writer_checkpoints"})
        CHECK(s["store_writes"][key].is_number_integer());
}

TEST_CASE("/api/v1/system/apps: the console, and its schema") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    json apps = get_json(svc.cli(), "/api/v1/system/apps");
    REQUIRE(apps.is_array());
    REQUIRE(apps.size() == 1);
    CHECK(apps[0]["prefix"] == "/");
    CHECK(apps[0]["is_package"] == true);
    json schema = get_json(svc.cli(), "/api/v1/system/apps/$schema");
    CHECK(schema["type"] == "array");
    const json &app = schema["$defs"]["AppInfo"];
    for (const auto &item : apps[0].items()) CHECK_MESSAGE(app["properties"].contains(item.key()), item.key());
    for (const auto &key : app["required"]) CHECK_MESSAGE(apps[0].contains(key.get<std::string>()), key);
    // The console the entry names is served.
    REQUIRE_STATUS(svc.cli().Get("/"), 200);
    check_problem(svc.cli().Get("/api/v1/system/nope"), 404);
}

TEST_CASE("unknown paths → 404 problem+json") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    json p = check_problem(cli.Get("/nope"), 404);
    CHECK(p["instance"] == "/nope");
    check_problem(cli.Get("/api/v1/nope"), 404);
    check_problem(cli.Get("/api/v1/tasks/greet_user/extra/segments"), 404);
    check_problem(cli.Get("/api/v1/tasks/"), 404);  // trailing slash is not the list
    check_problem(cli.Post("/api/v1/tasks/greet_user/$run", "{}", "application/json"), 404);
}

TEST_CASE("wrong method on a known path → 405 with Allow") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    auto res = cli.Put("/api/v1/tasks", "{}", "application/json");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "GET");

    res = cli.Get("/api/v1/tasks/greet_user/$execute");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "POST");

    res = cli.Post("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999", "", "application/json");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "GET, DELETE");

    res = cli.Delete("/api/v1/artifacts");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "GET, POST");

    res = cli.Post("/health", "", "application/json");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "GET");

    res = cli.Get("/api/v1/plugins/$reload");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "POST");
}

TEST_CASE("every 4xx is problem+json with the five fields") {
    // check_problem asserts Content-Type and type/title/status/detail/instance.
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    struct Case {
        std::string label;
        httplib::Result res;
        int status;
    };
    std::vector<Case> cases;
    cases.push_back({"unknown task", cli.Get("/api/v1/tasks/zzz"), 404});
    cases.push_back({"execute unknown", cli.Post("/api/v1/tasks/zzz/$execute", "{}", "application/json"), 404});
    cases.push_back({"bad json", cli.Post("/api/v1/tasks/hello/$execute", "{", "application/json"), 400});
    cases.push_back({"bad params", cli.Post("/api/v1/tasks/add/$execute", "{\"params\":{}}", "application/json"), 400});
    cases.push_back({"unknown job", cli.Get("/api/v1/jobs/01K72P5N5KCRM6MD3BRE4P0999"), 404});
    cases.push_back({"bad filter", cli.Get("/api/v1/jobs?status_filter=x"), 400});
    cases.push_back({"bad stream id", cli.Get("/api/v1/jobs/x/$stream"), 400});
    cases.push_back({"bad artifact id", cli.Get("/api/v1/artifacts/x"), 400});
    cases.push_back({"absent artifact", cli.Get("/api/v1/artifacts/01K72P5N5KCRM6MD3BRE4P0999"), 404});
    cases.push_back({"bad page", cli.Get("/api/v1/artifacts?page=0&size=1"), 400});
    cases.push_back({"no route", cli.Get("/x/y"), 404});
    cases.push_back({"method", cli.Delete("/api/v1/tasks"), 405});
    for (auto &c : cases) {
        INFO(c.label);
        json p = check_problem(c.res, c.status);
        CHECK(p["title"].get<std::string>().size() > 0);
        CHECK_CONTAINS(p["type"].get<std::string>(), "urn:");
        CHECK(p["instance"].is_string());
    }
}

TEST_CASE("keep-alive: many requests on one connection") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    cli.set_keep_alive(true);  // the test client closes after each request otherwise
    for (int i = 0; i < 50; ++i) {
        auto res = cli.Get("/ping");
        REQUIRE(res);
        CHECK(res->status == 200);
    }
}

TEST_CASE("SIGTERM stops the host cleanly") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    get_json(svc.cli(), "/health");
    int status = svc.host().stop(10000ms);
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(svc.host().is_alive());
}

}  // TEST_SUITE("system")

TEST_CASE("the console's files, request ids and the jobs schema") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    const std::string csp =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    struct File {
        const char *path, *type, *holds;
    };
    for (const File &f : {File{"/", "text/html; charset=utf-8", "/console/console.js"},
                          File{"/docs", "text/html; charset=utf-8", "/console/docs.js"},
                          File{"/redoc", "text/html; charset=utf-8", "/console/docs.js"},
                          File{"/console/console.js", "text/javascript; charset=utf-8", "/api/v1/tasks"},
                          File{"/console/console.css", "text/css; charset=utf-8", "{"},
                          File{"/console/icon.svg", "image/svg+xml", "<svg"},
                          File{"/manifest.json", "application/manifest+json", "\"start_url\""},
                          File{"/console/settings.json", "application/json", "\"api_key_header\""}}) {
        CAPTURE(f.path);
        auto page = cli.Get(f.path);
        REQUIRE_STATUS(page, 200);
        CHECK(page->get_header_value("Content-Type") == f.type);
        CHECK_CONTAINS(page->body, f.holds);
        CHECK(page->get_header_value("Content-Security-Policy") == csp);
        CHECK(page->get_header_value("X-Content-Type-Options") == "nosniff");
        CHECK(page->get_header_value("Cache-Control") == "no-cache");
        CHECK(page->get_header_value_count("Cache-Control") == 1);
        // A strong ETag from the content: a revalidation costs a 304 and no body.
        const std::string etag = page->get_header_value("ETag");
        REQUIRE(etag.size() == 34);
        CHECK(etag.front() == '"');
        for (const std::string &match : {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
            auto again = cli.Get(f.path, httplib::Headers{{"If-None-Match", match}});
            REQUIRE_STATUS(again, 304);
            CHECK(again->body.empty());
            CHECK(again->get_header_value("ETag") == etag);
        }
        REQUIRE_STATUS(cli.Get(f.path, httplib::Headers{{"If-None-Match", "\"other\""}}), 200);
        // A cache keeps the compressed and the plain body apart.
        CHECK(page->get_header_value("Vary") == "Accept-Encoding");
        auto head = cli.Head(f.path);
        REQUIRE_STATUS(head, 200);
        CHECK(head->body.empty());
        CHECK(head->get_header_value("ETag") == etag);
        auto post = cli.Post(f.path, "{}", "application/json");
        check_problem(post, 405);
        CHECK(post->get_header_value("Allow") == "GET, HEAD");
    }
    CHECK(cli.Get("/")->get_header_value("ETag") != cli.Get("/docs")->get_header_value("ETag"));
    CHECK(cli.Get("/docs")->body == cli.Get("/redoc")->body);
    // Without keys the console sends none.
    auto settings = cli.Get("/console/settings.json");
    REQUIRE_STATUS(settings, 200);
    CHECK(settings->get_header_value("Content-Security-Policy") == csp);
    json s = body_json(settings);
    CHECK(s["api_key_header"].is_null());
    CHECK(s["version"].is_string());
    CHECK(s["display_name"].is_string());
    check_problem(cli.Get("/console/"), 404);
    check_problem(cli.Get("/console/nope.js"), 404);
    check_problem(cli.Get("/console/../openapi.json"), 404);

    auto a = cli.Get("/health");
    auto b = cli.Get("/health");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(is_ulid(a->get_header_value("X-Request-ID")));
    CHECK(a->get_header_value("X-Request-ID") != b->get_header_value("X-Request-ID"));
    // A client's (or a proxy's) own id is kept when it is a plain token.
    auto given = cli.Get("/health", httplib::Headers{{"X-Request-ID", "req-42.a:b"}});
    REQUIRE(given);
    CHECK(given->get_header_value("X-Request-ID") == "req-42.a:b");
    auto odd = cli.Get("/health", httplib::Headers{{"X-Request-ID", "has space"}});
    REQUIRE(odd);
    CHECK(is_ulid(odd->get_header_value("X-Request-ID")));

    json schema = get_json(cli, "/api/v1/jobs/$schema");
    CHECK(schema["type"] == "array");
    CHECK(schema["items"]["$ref"] == "#/$defs/JobRecord");
    CHECK(schema["$defs"]["JobRecord"]["type"] == "object");
    for (const char *key : {"id", "status", "submitted_at", "artifact_id", "result"})
        CHECK(schema["$defs"]["JobRecord"]["properties"].contains(key));
    CHECK(schema["$defs"]["JobRecord"]["required"][0] == "id");
}

TEST_CASE("/api/v1/system/hosts on SQLite: this host alone, with its plugins") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    json hosts = get_json(svc.cli(), "/api/v1/system/hosts");
    REQUIRE(hosts.size() == 1);
    CHECK(hosts[0]["self"] == true);
    CHECK(hosts[0]["address"] == "http://127.0.0.1:" + std::to_string(svc.host().port()));
    CHECK(hosts[0]["plugins"].size() == 1);
    CHECK(hosts[0]["plugins"][0]["name"] == "demo");
    CHECK(is_iso_utc(hosts[0]["started_at"]));
}
