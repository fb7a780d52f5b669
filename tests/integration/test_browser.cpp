// What a web page could make the host do through a browser (issue 14, item
// 4): a rebound DNS name (foreign Host), cross-site posts (foreign Origin,
// text/plain bodies), and the CORS policy of --cors-origins.
#include "test_util.hpp"

using namespace th_test;

namespace {

using Headers = httplib::Headers;

size_t job_count(httplib::Client &cli) { return get_json(cli, "/api/v1/jobs").size(); }

std::string raw_get(const std::string &host_line) {
    return "GET /api/v1/tasks HTTP/1.1\r\n" + host_line + "Connection: keep-alive\r\n\r\n";
}

}  // namespace

TEST_SUITE("browser") {

TEST_CASE("Host: loopback names are served, a foreign name is 421 (DNS rebinding), a missing one 400") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    const std::string port = std::to_string(svc.host().port());
    for (const std::string &host : std::vector<std::string>{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port,
                                                            "localhost", "LocalHost:" + port, "127.0.0.1"}) {
        CAPTURE(host);
        CHECK_STATUS(cli.Get("/api/v1/tasks", Headers{{"Host", host}}), 200);
    }
    for (const std::string &host :
         std::vector<std::string>{"evil.example", "evil.example:" + port, "localhost.evil.example", "192.0.2.1"}) {
        CAPTURE(host);
        json p = check_problem(cli.Get("/api/v1/tasks", Headers{{"Host", host}}), 421, "Host: " + host);
        CHECK(p["type"] == "urn:taskhost:error:misdirected-request");
    }
    // Nothing is served under a foreign name, a job submission included.
    check_problem(
        cli.Post("/api/v1/tasks/hello/$execute", Headers{{"Host", "evil.example:" + port}}, "{}", "application/json"),
        421, "--allowed-hosts evil.example");
    CHECK(job_count(cli) == 0);

    // RFC 9112: an HTTP/1.1 request without Host, or with two, is 400; the
    // front door refuses it on the head, and closes the connection.
    for (const std::string &fields : {std::string(), std::string("Host: localhost\r\nHost: localhost\r\n")}) {
        RawConnection conn(svc.host().port());
        REQUIRE(conn.send(raw_get(fields)));
        CHECK(conn.read_status() == 400);
        CHECK(conn.read_all().empty());  // closed
    }
    RawConnection conn(svc.host().port());
    REQUIRE(conn.send(raw_get("Host: localhost:" + port + "\r\n")));
    CHECK(conn.read_status() == 200);
}

TEST_CASE("Host: --allowed-hosts (and TASKHOST_ALLOWED_HOSTS) adds names; * any; API keys lift the check") {
    {
        Service svc(ServiceOptions::examples({"demo.so"}).flags({"--allowed-hosts", "evil.example, api.example:9"}));
        auto &cli = svc.cli();
        CHECK_STATUS(cli.Get("/api/v1/tasks", Headers{{"Host", "evil.example"}}), 200);
        CHECK_STATUS(cli.Get("/api/v1/tasks", Headers{{"Host", "EVIL.example:1234"}}), 200);
        CHECK_STATUS(cli.Get("/api/v1/tasks", Headers{{"Host", "api.example:9"}}), 200);
        check_problem(cli.Get("/api/v1/tasks", Headers{{"Host", "api.example:10"}}), 421);
        check_problem(cli.Get("/api/v1/tasks", Headers{{"Host", "other.example"}}), 421);
        CHECK_STATUS(cli.Get("/api/v1/tasks"), 200);  // loopback still
    }
    {
        Service svc(ServiceOptions::examples({"demo.so"}).flags({"--allowed-hosts", "*"}));
        CHECK_STATUS(svc.cli().Get("/api/v1/tasks", Headers{{"Host", "anything.example"}}), 200);
    }
    {
        // Keys: a page that rebinds a name has no key, so Host is free...
        Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "k"}));
        CHECK_STATUS(svc.cli().Get("/api/v1/tasks", Headers{{"Host", "evil.example"}, {"X-API-Key", "k"}}), 200);
        check_problem(svc.cli().Get("/api/v1/tasks", Headers{{"Host", "evil.example"}}), 401);
    }
    {
        // ...unless --allowed-hosts restricts it.
        Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "k", "--allowed-hosts", "api.example"}));
        check_problem(svc.cli().Get("/api/v1/tasks", Headers{{"Host", "evil.example"}, {"X-API-Key", "k"}}), 421);
        CHECK_STATUS(svc.cli().Get("/api/v1/tasks", Headers{{"Host", "api.example"}, {"X-API-Key", "k"}}), 200);
    }
    // Entries that are not host names stop the start.
    int status = 0;
    std::string out;
    std::tie(status, out) = run_host_to_exit("--allowed-hosts http://evil.example");
    CHECK(status != 0);
    CHECK_CONTAINS(out, "not a host name");
}

TEST_CASE("a page's cross-site POST runs nothing: foreign Origin 403, a non-JSON body 415") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    const std::string port = std::to_string(svc.host().port());
    const std::string body = R"({"params": {}})";
    const Headers evil{{"Origin", "http://evil.example"}};

    // What an HTML form or fetch(..., {mode: "no-cors"}) on another site sends.
    for (const char *path : {"/api/v1/tasks/hello/$execute", "/api/v1/tasks/hello/$execute?wait=5"}) {
        CAPTURE(path);
        json p = check_problem(cli.Post(path, evil, body, "text/plain"), 403, "origin http://evil.example");
        CHECK(p["type"] == "urn:taskhost:error:forbidden");
        check_problem(cli.Post(path, evil, body, "application/x-www-form-urlencoded"), 403);
        check_problem(cli.Post(path, evil, body, "application/json"), 403);  // had it got past a preflight
        check_problem(cli.Post(path, Headers{{"Origin", "null"}}, body, "text/plain"), 403);  // sandboxed pages
        // Without Origin (an older browser, a form from file://), the body
        // type still gives it away.
        json q = check_problem(cli.Post(path, body, "text/plain"), 415, "Content-Type: application/json");
        CHECK(q["type"] == "urn:taskhost:error:unsupported-media-type");
        check_problem(cli.Post(path, "--x\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{}\r\n--x--\r\n",
                               "multipart/form-data; boundary=x"),
                      415);
    }
    check_problem(cli.Post("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/$cancel", evil, "", "text/plain"), 403);
    check_problem(cli.Delete("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", evil), 403);
    check_problem(cli.Post("/api/v1/artifacts", evil, R"({"data": 1})", "text/plain"), 403);
    check_problem(cli.Post("/api/v1/artifacts", R"({"data": 1})", "text/plain"), 415);
    CHECK(job_count(cli) == 0);
    CHECK(get_json(cli, "/api/v1/artifacts/$stats")["total"] == 0);

    // The same calls as a program makes them (JSON, no Origin) are served,
    // and so are those of the host's own pages (/docs: Origin is the host).
    CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute", body, "application/json"), 202);
    CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute", body, "application/json; charset=utf-8"), 202);
    CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute", Headers{{"Origin", "http://127.0.0.1:" + port}}, body,
                          "application/json"),
                 202);
    CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute",
                          Headers{{"Origin", "http://localhost:" + port}, {"Host", "localhost:" + port}}, body,
                          "application/json"),
                 202);
    CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute"), 202);  // no body: nothing to type
    CHECK(job_count(cli) == 5);
    // A safe method is answered whatever the Origin (no CORS header: the page cannot read it).
    auto res = cli.Get("/api/v1/tasks", evil);
    CHECK_STATUS(res, 200);
    CHECK_FALSE(res->has_header("Access-Control-Allow-Origin"));
}

TEST_CASE("a page's cross-site $reload loads nothing") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    fs::copy_file(example_plugin("math.so"), svc.plugins_dir() / "math.so");
    auto loaded = [&] { return get_json(cli, "/api/v1/plugins").size(); };
    REQUIRE(loaded() == 1);
    check_problem(cli.Post("/api/v1/plugins/$reload", Headers{{"Origin", "http://evil.example"}}, "{}", "text/plain"),
                  403, "http://evil.example");
    check_problem(cli.Post("/api/v1/plugins/$reload", "{}", "text/plain"), 415);
    check_problem(cli.Post("/api/v1/plugins/$reload", Headers{{"Origin", "http://evil.example"}}), 403);
    CHECK(loaded() == 1);
    CHECK_STATUS(cli.Post("/api/v1/plugins/$reload", "{}", "application/json"), 200);
    CHECK(loaded() == 2);
}

TEST_CASE("CORS: --cors-origins pages may call it (preflight answered); other origins' preflights are 403") {
    const std::string app = "https://app.example.com";
    Service svc(ServiceOptions::examples({"demo.so"})
                    .flags({"--cors-origins", app + ",http://localhost:3000/", "--max-body-bytes", "1024"}));
    auto &cli = svc.cli();
    auto preflight = [&](const std::string &origin) {
        return cli.Options("/api/v1/tasks/hello/$execute", Headers{{"Origin", origin},
                                                                   {"Access-Control-Request-Method", "POST"},
                                                                   {"Access-Control-Request-Headers", "content-type"}});
    };
    for (const std::string &origin : {app, std::string("http://localhost:3000")}) {
        CAPTURE(origin);
        auto res = preflight(origin);
        REQUIRE_STATUS(res, 204);
        CHECK(res->get_header_value("Access-Control-Allow-Origin") == origin);
        CHECK(res->get_header_value("Vary") == "Origin");
        CHECK(res->get_header_value("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE");
        CHECK(res->get_header_value("Access-Control-Allow-Headers") == "Content-Type, Idempotency-Key, X-API-Key");
        CHECK(res->get_header_value("Access-Control-Max-Age") == "600");
    }
    for (const char *origin : {"https://evil.example", "http://app.example.com", "null"}) {
        CAPTURE(origin);
        auto res = preflight(origin);
        check_problem(res, 403, "not one of --cors-origins");
        CHECK_FALSE(res->has_header("Access-Control-Allow-Origin"));
    }

    // The actual calls from the page: answered with its origin, so it may read them.
    auto res = cli.Post("/api/v1/tasks/hello/$execute", Headers{{"Origin", app}}, "{}", "application/json");
    REQUIRE_STATUS(res, 202);
    CHECK(res->get_header_value("Access-Control-Allow-Origin") == app);
    CHECK(res->get_header_value("Vary") == "Origin");
    CHECK(res->get_header_value("Access-Control-Expose-Headers") ==
          "X-Request-ID, Location, Link, Retry-After, Idempotent-Replayed");
    res = cli.Get("/api/v1/tasks/nope", Headers{{"Origin", app}});  // errors too
    check_problem(res, 404);
    CHECK(res->get_header_value("Access-Control-Allow-Origin") == app);
    // A body over --max-body-bytes, refused by the HTTP library itself.
    res =
        cli.Post("/api/v1/tasks/hello/$execute", Headers{{"Origin", app}}, std::string(4096, ' '), "application/json");
    check_problem(res, 413);
    CHECK(res->get_header_value("Access-Control-Allow-Origin") == app);
    // Other origins get no CORS header, and their posts are refused.
    res = cli.Get("/api/v1/tasks", Headers{{"Origin", "https://evil.example"}});
    REQUIRE_STATUS(res, 200);
    CHECK_FALSE(res->has_header("Access-Control-Allow-Origin"));
    CHECK(res->get_header_value("Vary") == "Origin");
    check_problem(
        cli.Post("/api/v1/tasks/hello/$execute", Headers{{"Origin", "https://evil.example"}}, "{}", "application/json"),
        403);

    // An OPTIONS that is no preflight is routed as before: 405 naming the methods.
    res = cli.Options("/api/v1/tasks/hello/$execute");
    check_problem(res, 405);
    CHECK(res->get_header_value("Allow") == "POST");

    // Origins that are not origins stop the start.
    int status = 0;
    std::string out;
    std::tie(status, out) = run_host_to_exit("--cors-origins '*'");
    CHECK(status != 0);
    CHECK_CONTAINS(out, "not an origin");
}

TEST_CASE("CORS without --cors-origins: no CORS header, every preflight 403; with API keys, no key needed for it") {
    {
        Service svc(ServiceOptions::examples({"demo.so"}));
        auto res = svc.cli().Options(
            "/api/v1/tasks", Headers{{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "GET"}});
        check_problem(res, 403);
        res = svc.cli().Get("/api/v1/tasks", Headers{{"Origin", "https://app.example.com"}});
        REQUIRE_STATUS(res, 200);
        CHECK_FALSE(res->has_header("Access-Control-Allow-Origin"));
        CHECK_FALSE(res->has_header("Vary"));
    }
    {
        Service svc(ServiceOptions::examples({"demo.so"})
                        .flags({"--api-keys", "k", "--cors-origins", "https://app.example.com"}));
        auto &cli = svc.cli();
        auto res = cli.Options("/api/v1/tasks", Headers{{"Origin", "https://app.example.com"},
                                                        {"Access-Control-Request-Method", "GET"},
                                                        {"Access-Control-Request-Headers", "x-api-key"}});
        REQUIRE_STATUS(res, 204);
        CHECK(res->get_header_value("Access-Control-Allow-Headers") == "Content-Type, Idempotency-Key, X-API-Key");
        res = cli.Get("/api/v1/tasks", Headers{{"Origin", "https://app.example.com"}, {"X-API-Key", "k"}});
        REQUIRE_STATUS(res, 200);
        CHECK(res->get_header_value("Access-Control-Allow-Origin") == "https://app.example.com");
        res = cli.Get("/api/v1/tasks", Headers{{"Origin", "https://app.example.com"}});  // 401 readable too
        check_problem(res, 401);
        CHECK(res->get_header_value("Access-Control-Allow-Origin") == "https://app.example.com");
        // With keys, a text/plain post with a key is served as before.
        CHECK_STATUS(cli.Post("/api/v1/tasks/hello/$execute", Headers{{"X-API-Key", "k"}}, "{}", "text/plain"), 202);
    }
}

}  // TEST_SUITE("browser")
