// API keys (--api-keys, --api-keys-file, --api-key-header): the original's
// case 89, startup errors, and the OpenAPI document's security scheme.
#include "test_util.hpp"

#include <csignal>
#include <fstream>

using namespace th_test;

namespace {

httplib::Headers key(const std::string &value, const std::string &header = "X-API-Key") { return {{header, value}}; }

}  // namespace

TEST_SUITE("auth") {

TEST_CASE("API keys: missing or wrong → 401 problem+json; any listed key → 200; exempt paths need none") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "first-key, second-key"}));
    auto &cli = svc.cli();

    auto res = cli.Get("/api/v1/tasks");
    json p = check_problem(res, 401, "Missing authentication header: X-API-Key");
    CHECK(p["type"] == "urn:taskhost:error:unauthorized");
    CHECK(p["title"] == "Unauthorized");
    CHECK(p["instance"] == "/api/v1/tasks");
    CHECK(res->get_header_value("WWW-Authenticate") == "ApiKey header=\"X-API-Key\"");
    CHECK(is_ulid(res->get_header_value("X-Request-ID")));

    check_problem(cli.Get("/api/v1/tasks", key("third-key")), 401, "Invalid API key");
    check_problem(cli.Get("/api/v1/tasks", key("first-ke")), 401, "Invalid API key");   // exact: no prefix,
    check_problem(cli.Get("/api/v1/tasks", key("FIRST-KEY")), 401, "Invalid API key");  // no case folding
    check_problem(cli.Get("/api/v1/tasks", key("")), 401);                              // an empty value counts as none
    CHECK(cli.Get("/api/v1/tasks", key("first-key"))->status == 200);
    CHECK(cli.Get("/api/v1/tasks", key("second-key"))->status == 200);

    // As the original: these are exempt (exact match), and with them the
    // console's files (it asks for a key in the page); nothing else is.
    for (const char *path : {"/health", "/", "/docs", "/redoc", "/openapi.json", "/manifest.json",
                             "/console/console.js", "/console/settings.json"}) {
        CAPTURE(path);
        CHECK(cli.Get(path)->status == 200);
    }
    // The console learns the header to send from its settings.
    CHECK(body_json(cli.Get("/console/settings.json"))["api_key_header"] == "X-API-Key");
    check_problem(cli.Get("/console"), 401);
    check_problem(cli.Get("/consoles/console.js"), 401);
    check_problem(cli.Get("/health/$stream"), 401);
    check_problem(cli.Get("/api/v1/info"), 401);
    check_problem(cli.Get("/ping"), 401);
    check_problem(cli.Get("/no/such/path"), 401);  // before routing: says nothing about what exists

    // A refused request changes nothing: no job was stored.
    check_problem(post_json(cli, "/api/v1/tasks/hello/$execute", json::object()), 401);
    res = cli.Get("/api/v1/jobs", key("first-key"));
    REQUIRE_STATUS(res, 200);
    CHECK(body_json(res).empty());

    // With a key, the whole job path works, a body-less POST included.
    res = cli.Post("/api/v1/tasks/hello/$execute?wait=10", key("second-key"), "{}", "application/json");
    REQUIRE_STATUS(res, 200);
    CHECK(body_json(res)["status"] == "completed");
    res = cli.Post("/api/v1/tasks/hello/$execute", key("nope"));
    check_problem(res, 401, "Invalid API key");
}

TEST_CASE("API keys: a refused request's body is not read, its connection closes, the next one is served") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "k"}));
    const std::string body = R"({"params":{"name":")" + std::string(200000, 'x') + R"("}})";
    auto post = [&](const std::string &api_key) {
        return "POST /api/v1/tasks/greet_user/$execute?wait=10 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + api_key +
               "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
               body;
    };
    for (int i = 0; i < 3; ++i) {
        RawConnection refused(svc.host().port());
        refused.send(post("wrong"));  // the host may close before all of it is sent
        const std::string answer = refused.read_all();
        CHECK(answer.rfind("HTTP/1.1 401 ", 0) == 0);
        CHECK_CONTAINS(answer, "Connection: close");
        RawConnection accepted(svc.host().port());
        REQUIRE(accepted.send(post("k")));
        CHECK(accepted.read_status() == 200);
    }
}

TEST_CASE("API keys: from a file with comments, through the environment variable too, in a custom header") {
    TempDir tmp;
    {
        std::ofstream f(tmp / "keys");
        f << "# rotated 2026-11\n\nalpha-key\n  beta-key   # the CI runner\n#gamma-key\n";
    }
    Service svc(ServiceOptions::examples({"demo.so"})
                    .flags({"--api-keys-file", (tmp / "keys").string(), "--api-key-header", "X-Token"}));
    auto &cli = svc.cli();
    CHECK(cli.Get("/api/v1/tasks", key("alpha-key", "X-Token"))->status == 200);
    CHECK(cli.Get("/api/v1/tasks", key("beta-key", "X-Token"))->status == 200);
    check_problem(cli.Get("/api/v1/tasks", key("gamma-key", "X-Token")), 401, "Invalid API key");
    check_problem(cli.Get("/api/v1/tasks", key("alpha-key")), 401, "Missing authentication header: X-Token");
    CHECK(cli.Get("/api/v1/tasks", key("alpha-key", "x-token"))->status == 200);  // header names ignore case
}

TEST_CASE("API keys: SIGHUP re-reads the keys file; a file that became unusable keeps the keys in force" *
          doctest::test_suite("concurrency")) {
    TempDir tmp;
    const auto file = tmp / "keys";
    auto write_keys = [&](const std::string &text) {
        // Written aside and renamed, as a deploy would: the host never reads half a file.
        std::ofstream(tmp / "keys.new") << text;
        fs::rename(tmp / "keys.new", file);
    };
    write_keys("old-key\n");
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys-file", file.string()}));
    auto &cli = svc.cli();
    auto status_with = [&](const std::string &k) { return cli.Get("/api/v1/tasks", key(k))->status; };
    CHECK(status_with("old-key") == 200);
    CHECK(status_with("new-key") == 401);

    write_keys("old-key\nnew-key\n");  // rotation, step 1: both work
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] { return status_with("new-key") == 200; }));
    CHECK(status_with("old-key") == 200);

    write_keys("new-key\n");  // step 2: the old one is retired
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] { return status_with("old-key") == 401; }));
    CHECK(status_with("new-key") == 200);

    write_keys("# emptied by mistake\n");  // never "no keys, so no check"
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] { return contains(svc.host().stderr_text(), "API keys not reloaded"); }));
    CHECK(status_with("new-key") == 200);
    check_problem(cli.Get("/api/v1/tasks"), 401);
    fs::remove(file);  // unreadable: the same
    svc.host().send_signal(SIGHUP);
    REQUIRE(eventually([&] { return contains(svc.host().stderr_text(), "cannot read the API keys file"); }));
    CHECK(status_with("new-key") == 200);
}

TEST_CASE("API keys: the OpenAPI document declares the scheme, and only when keys are required") {
    {
        Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "k", "--api-key-header", "X-Token"}));
        json doc = get_json(svc.cli(), "/openapi.json");
        CHECK(doc["components"]["securitySchemes"]["ApiKey"] ==
              json{{"type", "apiKey"}, {"in", "header"}, {"name", "X-Token"}});
        CHECK(doc["security"] == json::array({json{{"ApiKey", json::array()}}}));
        CHECK(doc["paths"]["/health"]["get"]["security"] == json::array());
        CHECK(doc["paths"]["/api/v1/jobs"]["get"]["responses"]["401"] ==
              json{{"$ref", "#/components/responses/Unauthorized"}});
        CHECK_FALSE(doc["paths"]["/health"]["get"]["responses"].contains("401"));
    }
    Service open(ServiceOptions::examples({"demo.so"}));
    json doc = get_json(open.cli(), "/openapi.json");
    CHECK_FALSE(doc.contains("security"));
    CHECK_FALSE(doc["components"].contains("securitySchemes"));
    CHECK_FALSE(doc["paths"]["/api/v1/jobs"]["get"]["responses"].contains("401"));
}

TEST_CASE("API keys: the host refuses to start without a usable key") {
    TempDir tmp;
    {
        std::ofstream f(tmp / "comments-only");
        f << "# nothing here yet\n\n";
    }
    auto [code, out] = run_host_to_exit("--api-keys-file " + (tmp / "comments-only").string());
    CHECK(code == 1);
    CHECK(contains(out, "no API key was given"));

    std::tie(code, out) = run_host_to_exit("--api-keys ' , '");
    CHECK(code == 1);
    CHECK(contains(out, "no API key was given"));

    std::tie(code, out) = run_host_to_exit("--api-keys-file " + (tmp / "missing").string());
    CHECK(code == 1);
    CHECK(contains(out, "cannot read the API keys file"));

    std::tie(code, out) = run_host_to_exit("--api-keys k --api-key-header ''");
    CHECK(code != 0);
    CHECK(contains(out, "must not be empty"));
}

TEST_CASE("API keys: a start refused for its keys does not touch the jobs left from the last run") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db().flags({"--max-concurrency", "1"}));
    auto &cli = svc.cli();
    std::string running = submit(cli, "slow_task", {{"seconds", 120}});
    wait_status(cli, running, "running");
    std::string queued = submit(cli, "slow_task", {{"seconds", 0.2}});
    svc.kill9();
    // Refused before recovery: the queued job is neither started nor canceled by it.
    auto [code, out] =
        run_host_to_exit("--max-concurrency 1 --api-keys-file /nonexistent/taskhost-keys", svc.db_path());
    CHECK(code == 1);
    CHECK(contains(out, "cannot read the API keys file"));
    CHECK_FALSE(contains(out, "requeued"));
    svc.restart();
    CHECK(wait_job(svc.cli(), queued, 30)["status"] == "completed");
    CHECK(get_job(svc.cli(), running)["status"] == "failed");
}

}  // TEST_SUITE("auth")
