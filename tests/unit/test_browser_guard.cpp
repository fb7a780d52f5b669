// The browser rules (host/http/browser_guard.hpp) on hand-made request
// heads: Host, Origin, content type, CORS headers and preflights.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

#include "http/browser_guard.hpp"

using namespace taskhost::http;

namespace {

httplib::Request head(std::string method, std::vector<std::pair<std::string, std::string>> headers,
                      std::string path = "/api/v1/tasks/hello/$execute") {
    httplib::Request req;
    req.method = std::move(method);
    req.path = std::move(path);
    req.version = "HTTP/1.1";
    for (auto &[k, v] : headers) req.headers.emplace(k, v);
    return req;
}

// The status the guard answers, or 0 if it lets the request go on.
int verdict(const BrowserGuardOptions &o, const httplib::Request &req, httplib::Response *out = nullptr) {
    httplib::Response res;
    const bool admitted = admit_browser_request(o, req, res);
    if (out) *out = res;
    if (admitted) {
        CHECK(res.status == -1);
        return 0;
    }
    return res.status;
}

const std::vector<std::pair<std::string, std::string>> json_body = {{"Content-Type", "application/json"},
                                                                    {"Content-Length", "2"}};

}  // namespace

TEST_CASE("browser guard: Host must name the host") {
    BrowserGuardOptions o;
    for (const char *host : {"localhost", "localhost:8000", "LOCALHOST:8000", "127.0.0.1", "127.0.0.1:1", "[::1]",
                             "[::1]:8000", "::1", "localhost:"}) {
        CAPTURE(host);
        CHECK(verdict(o, head("GET", {{"Host", host}})) == 0);
    }
    httplib::Response res;
    CHECK(verdict(o, head("GET", {{"Host", "evil.example"}}), &res) == 421);
    CHECK(res.get_header_value("Content-Type") == "application/problem+json");
    CHECK(res.body.find("--allowed-hosts evil.example") != std::string::npos);
    for (const char *host : {"evil.example:8000", "localhost.", "127.0.0.2", "[::2]", "0.0.0.0:8000", "10.0.0.1"}) {
        CAPTURE(host);
        CHECK(verdict(o, head("GET", {{"Host", host}})) == 421);
    }
    // Missing (HTTP/1.1), repeated or malformed: 400.
    CHECK(verdict(o, head("GET", {})) == 400);
    CHECK(verdict(o, head("GET", {{"Host", "localhost"}, {"Host", "localhost"}})) == 400);
    for (const char *host : {"", "a b", "localhost:80a", "localhost:123456", "user@localhost", "[::1", "[x]", "a/b"}) {
        CAPTURE(host);
        CHECK(verdict(o, head("GET", {{"Host", host}})) == 400);
    }
    auto old = head("GET", {});
    old.version = "HTTP/1.0";
    CHECK(verdict(o, old) == 0);  // HTTP/1.0 may leave Host out (no browser does)
}

TEST_CASE("browser guard: --allowed-hosts, --host and API keys") {
    BrowserGuardOptions o;
    o.allowed_hosts = {"evil.example", "api.example:8443"};
    CHECK(verdict(o, head("GET", {{"Host", "evil.example"}})) == 0);
    CHECK(verdict(o, head("GET", {{"Host", "Evil.Example:9000"}})) == 0);
    CHECK(verdict(o, head("GET", {{"Host", "api.example:8443"}})) == 0);
    CHECK(verdict(o, head("GET", {{"Host", "api.example:8444"}})) == 421);
    CHECK(verdict(o, head("GET", {{"Host", "other.example"}})) == 421);

    o.allowed_hosts = {"*"};
    CHECK(verdict(o, head("GET", {{"Host", "anything.example"}})) == 0);
    CHECK(verdict(o, head("GET", {})) == 400);  // still HTTP/1.1

    o.allowed_hosts.clear();
    o.bound_host = "192.168.1.5";
    CHECK(verdict(o, head("GET", {{"Host", "192.168.1.5:8000"}})) == 0);
    o.bound_host = "0.0.0.0";  // a wildcard names no host
    CHECK(verdict(o, head("GET", {{"Host", "0.0.0.0:8000"}})) == 421);
    o.bound_host = "::";
    CHECK(verdict(o, head("GET", {{"Host", "[::]:8000"}})) == 421);

    o.api_keys = true;  // keys: any Host, unless --allowed-hosts says otherwise
    CHECK(verdict(o, head("GET", {{"Host", "evil.example"}})) == 0);
    CHECK(verdict(o, head("GET", {})) == 400);
    o.allowed_hosts = {"api.example"};
    CHECK(verdict(o, head("GET", {{"Host", "evil.example"}})) == 421);
    CHECK(verdict(o, head("GET", {{"Host", "api.example"}})) == 0);
    CHECK(verdict(o, head("GET", {{"Host", "localhost"}})) == 0);
}

TEST_CASE("browser guard: foreign Origin on a state-changing request is 403") {
    BrowserGuardOptions o;
    auto with = [](std::string method, std::vector<std::pair<std::string, std::string>> extra) {
        std::vector<std::pair<std::string, std::string>> h = {{"Host", "127.0.0.1:8000"}};
        h.insert(h.end(), extra.begin(), extra.end());
        return head(std::move(method), h);
    };
    httplib::Response res;
    CHECK(verdict(o, with("POST", {{"Origin", "http://evil.example"}, json_body[0], json_body[1]}), &res) == 403);
    CHECK(res.body.find("http://evil.example") != std::string::npos);
    for (const char *m : {"PUT", "PATCH", "DELETE"}) {
        CAPTURE(m);
        CHECK(verdict(o, with(m, {{"Origin", "http://evil.example"}})) == 403);
    }
    CHECK(verdict(o, with("POST", {{"Origin", "null"}})) == 403);
    CHECK(verdict(o, with("POST", {{"Origin", "http://localhost:8000"}})) == 403);  // another origin
    CHECK(verdict(o, with("POST", {{"Origin", "http://127.0.0.1:8001"}})) == 403);  // another port
    // Safe methods are not refused for their Origin (the browser keeps the answer from the page).
    CHECK(verdict(o, with("GET", {{"Origin", "http://evil.example"}})) == 0);
    // The host's own pages (/docs) post to it.
    CHECK(verdict(o, with("POST", {{"Origin", "http://127.0.0.1:8000"}, json_body[0], json_body[1]})) == 0);
    CHECK(verdict(o, with("POST", {{"Origin", "https://127.0.0.1:8000"}})) == 0);  // behind a TLS proxy
    CHECK(verdict(o, with("DELETE", {})) == 0);                                    // no Origin: not a browser's
    // A Host accepted only through "*" does not make its origin the host's own (DNS rebinding).
    o.allowed_hosts = {"*"};
    CHECK(verdict(o, head("POST", {{"Host", "evil.example"}, {"Origin", "http://evil.example"}})) == 403);
    o.allowed_hosts = {"taskhost.example"};
    CHECK(verdict(o, head("POST", {{"Host", "taskhost.example"}, {"Origin", "https://taskhost.example"}})) == 0);
    // Listed origins may.
    o.cors_origins = {"https://app.example.com"};
    CHECK(verdict(o, with("POST", {{"Origin", "https://app.example.com"}, json_body[0], json_body[1]})) == 0);
    // With API keys, the key is what a page cannot forge: Origin is not looked at.
    o.api_keys = true;
    CHECK(verdict(o, with("POST", {{"Origin", "http://evil.example"}})) == 0);
}

TEST_CASE("browser guard: a POST, PUT or PATCH body must be JSON") {
    BrowserGuardOptions o;
    auto post = [](std::string method, std::vector<std::pair<std::string, std::string>> extra) {
        std::vector<std::pair<std::string, std::string>> h = {{"Host", "localhost"}};
        h.insert(h.end(), extra.begin(), extra.end());
        return head(std::move(method), h);
    };
    httplib::Response res;
    CHECK(verdict(o, post("POST", {{"Content-Type", "text/plain"}, {"Content-Length", "2"}}), &res) == 415);
    CHECK(res.body.find("got text/plain") != std::string::npos);
    CHECK(verdict(o, post("POST", {{"Content-Length", "2"}})) == 415);
    CHECK(verdict(o, post("PUT", {{"Content-Type", "application/x-www-form-urlencoded"}, {"Content-Length", "3"}})) ==
          415);
    CHECK(verdict(o, post("PATCH", {{"Content-Type", "multipart/form-data; boundary=x"}, {"Content-Length", "3"}})) ==
          415);
    CHECK(verdict(o, post("POST", {{"Content-Type", "text/plain"}, {"Transfer-Encoding", "chunked"}})) == 415);
    CHECK(verdict(o, post("POST", {{"Content-Type", "text/json"}, {"Content-Length", "2"}})) == 415);
    CHECK(verdict(o, post("POST", {{"Content-Type", "application/jsonx"}, {"Content-Length", "2"}})) == 415);
    for (const char *type : {"application/json", "Application/JSON", "application/json; charset=utf-8",
                             "application/problem+json", "application/merge-patch+json ; q=1"}) {
        CAPTURE(type);
        CHECK(verdict(o, post("POST", {{"Content-Type", type}, {"Content-Length", "2"}})) == 0);
    }
    // No body: nothing to be wrong about.
    CHECK(verdict(o, post("POST", {{"Content-Type", "text/plain"}, {"Content-Length", "0"}})) == 0);
    CHECK(verdict(o, post("POST", {})) == 0);
    CHECK(verdict(o, post("DELETE", {{"Content-Type", "text/plain"}, {"Content-Length", "2"}})) == 0);
    o.api_keys = true;
    CHECK(verdict(o, post("POST", {{"Content-Type", "text/plain"}, {"Content-Length", "2"}})) == 0);
}

TEST_CASE("browser guard: CORS headers and preflights") {
    BrowserGuardOptions o;
    auto preflight = [](const std::string &origin) {
        return head("OPTIONS", {{"Host", "localhost:8000"},
                                {"Origin", origin},
                                {"Access-Control-Request-Method", "POST"},
                                {"Access-Control-Request-Headers", "content-type"}});
    };
    httplib::Response res;
    // No --cors-origins: every preflight is refused, nothing says CORS.
    CHECK(verdict(o, preflight("https://app.example.com"), &res) == 403);
    CHECK_FALSE(res.has_header("Access-Control-Allow-Origin"));
    CHECK_FALSE(res.has_header("Vary"));
    // A plain OPTIONS goes on to be routed (405 with Allow).
    CHECK(verdict(o, head("OPTIONS", {{"Host", "localhost"}})) == 0);

    o.cors_origins = {"https://app.example.com"};
    o.api_key_header = "X-Token";
    CHECK(verdict(o, preflight("https://app.example.com"), &res) == 204);
    CHECK(res.body.empty());
    CHECK(res.get_header_value("Access-Control-Allow-Origin") == "https://app.example.com");
    CHECK(res.get_header_value("Vary") == "Origin");
    CHECK(res.get_header_value("Access-Control-Allow-Methods") == "GET, POST, PUT, DELETE");
    CHECK(res.get_header_value("Access-Control-Allow-Headers") == "Content-Type, Idempotency-Key, X-Token");
    CHECK(res.get_header_value("Access-Control-Max-Age") == "600");
    CHECK(verdict(o, preflight("https://evil.example"), &res) == 403);
    CHECK_FALSE(res.has_header("Access-Control-Allow-Origin"));
    CHECK(res.get_header_value("Vary") == "Origin");
    CHECK(verdict(o, preflight("https://app.example.com:8443")) == 403);  // exact origins
    o.api_keys = true;                                                    // answered before any key is asked for
    CHECK(verdict(o, preflight("https://app.example.com")) == 204);

    // An actual request from an allowed origin: the answer may be read.
    CHECK(verdict(o, head("GET", {{"Host", "localhost"}, {"Origin", "https://app.example.com"}}), &res) == 0);
    CHECK(res.get_header_value("Access-Control-Allow-Origin") == "https://app.example.com");
    CHECK(res.get_header_value("Access-Control-Expose-Headers") ==
          "X-Request-ID, Location, Link, Retry-After, Idempotent-Replayed");
    // Added once, however often it runs.
    add_cors_headers(o, head("GET", {{"Host", "localhost"}, {"Origin", "https://app.example.com"}}), res);
    CHECK(res.get_header_value_count("Access-Control-Allow-Origin") == 1);
    CHECK(res.get_header_value_count("Vary") == 1);
    // Other origins get Vary only.
    CHECK(verdict(o, head("GET", {{"Host", "localhost"}, {"Origin", "https://evil.example"}}), &res) == 0);
    CHECK_FALSE(res.has_header("Access-Control-Allow-Origin"));
    CHECK(res.get_header_value("Vary") == "Origin");
    // A wrong Host is refused before anything CORS.
    o.api_keys = false;
    CHECK(verdict(o, head("OPTIONS", {{"Host", "evil.example"},
                                      {"Origin", "https://app.example.com"},
                                      {"Access-Control-Request-Method", "POST"}})) == 421);
}

TEST_CASE("browser guard: flag values are checked and normalised") {
    CHECK(normalize_allowed_host(" Evil.Example ") == "evil.example");
    CHECK(normalize_allowed_host("api.example:8443") == "api.example:8443");
    CHECK(normalize_allowed_host("fd00::1") == "[fd00::1]");
    CHECK(normalize_allowed_host("*") == "*");
    CHECK(normalize_allowed_host("  ").empty());
    CHECK_THROWS_AS(normalize_allowed_host("http://evil.example"), std::invalid_argument);
    CHECK_THROWS_AS(normalize_allowed_host("evil.example/x"), std::invalid_argument);
    CHECK_THROWS_AS(normalize_allowed_host("evil.example:http"), std::invalid_argument);

    CHECK(normalize_cors_origin("https://App.Example.com/") == "https://app.example.com");
    CHECK(normalize_cors_origin("https://app.example.com:443") == "https://app.example.com");
    CHECK(normalize_cors_origin("http://localhost:3000") == "http://localhost:3000");
    CHECK(normalize_cors_origin("").empty());
    for (const char *bad : {"app.example.com", "*", "null", "https://app.example.com/path", "https://", "://x"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(normalize_cors_origin(bad), std::invalid_argument);
    }
}
