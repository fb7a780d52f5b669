// The request head checker: what it lets through to cpp-httplib, and what
// it refuses before the library could mis-frame it.
#include <doctest/doctest.h>

#include <string>

#include "http/request_head.hpp"

using namespace taskhost::http;

namespace {
HeadVerdict check(const std::string &text, HeadLimits limits = {}) { return check_request_head(text, limits); }
}  // namespace

TEST_SUITE("request head") {

TEST_CASE("a complete head is ok and says where its body starts and how it is framed") {
    const std::string head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    HeadVerdict v = check(head + "hello" + "GET / HTTP/1.1\r\n");
    REQUIRE(v.kind == HeadVerdict::Kind::ok);
    CHECK(v.head_bytes == head.size());
    CHECK(v.body.kind == BodyFraming::Kind::length);
    CHECK(v.body.length == 5);
    CHECK(check("POST /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n").body.kind ==
          BodyFraming::Kind::chunked);
    CHECK(check("GET / HTTP/1.1\r\nHost: a\r\n\r\n").body.kind == BodyFraming::Kind::none);
    CHECK(check("GET / HTTP/1.0\r\n\r\n").kind == HeadVerdict::Kind::ok);  // no Host needed in 1.0
}

TEST_CASE("an unfinished head is incomplete until a limit is passed") {
    CHECK(check("GET / HTTP/1.1\r\nHost: a\r\n").kind == HeadVerdict::Kind::incomplete);
    HeadLimits small;
    small.max_head_bytes = 100;
    small.max_line_bytes = 1000;
    HeadVerdict v = check("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(200, 'a'), small);
    CHECK(v.kind == HeadVerdict::Kind::refuse);
    CHECK(v.status == 431);
    small.max_head_bytes = 10000;
    small.max_fields = 3;
    v = check("GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n", small);
    CHECK(v.status == 431);
    small.max_line_bytes = 50;
    CHECK(check("GET /" + std::string(100, 'a'), small).status == 414);
}

TEST_CASE("ambiguous framing is refused") {
    auto status = [](const std::string &fields) { return check("POST / HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n").status; };
    CHECK(status("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") == 400);
    CHECK(status("Content-Length: 5\r\nContent-Length: 5\r\n") == 400);
    CHECK(status("Content-Length: +5\r\n") == 400);
    CHECK(status("Content-Length: 5abc\r\n") == 400);
    CHECK(status("Content-Length: 99999999999999999999\r\n") == 400);
    CHECK(status("Content-Length: \r\n") == 400);
    CHECK(status("Transfer-Encoding : chunked\r\n") == 400);
    CHECK(status("Transfer-Encoding: gzip, chunked\r\n") == 501);
    CHECK(status("Transfer-Encoding: chunked \r\n") == 501);
    CHECK(status("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n") == 400);
    CHECK(status("X: a\r\n b\r\n") == 400);
    CHECK(status("X: a\x01\r\n") == 400);
    CHECK(status("Host: b\r\n") == 400);
    CHECK(check("POST / HTTP/1.1\nHost: a\n\n").status == 400);
    CHECK(check("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").status == 400);
    CHECK(check("POST / HTTP/1.1\r\n\r\n").status == 400);  // no Host
    CHECK(check("GET / HTTP/2.0\r\nHost: a\r\n\r\n").status == 505);
}

TEST_CASE("a declared body over the limit is refused before it is read") {
    HeadLimits limits;
    limits.max_body_bytes = 100;
    HeadVerdict v = check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", limits);
    CHECK(v.status == 413);
    CHECK(check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", limits).kind == HeadVerdict::Kind::ok);
}

TEST_CASE("empty lines before a request line are skipped, not taken as a request") {
    CHECK(leading_empty_lines("\r\n\r\nGET") == 4);
    CHECK(leading_empty_lines("\nGET") == 1);
    CHECK(leading_empty_lines("GET") == 0);
}

}  // TEST_SUITE
