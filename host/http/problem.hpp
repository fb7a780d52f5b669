// Response helpers: RFC 9457 problem details (every error the API returns
// has that shape), JSON answers and the headers of SSE answers.
#pragma once

#include <string>
#include <string_view>

#include <httplib.h>

#include "util/result.hpp"

namespace taskhost::http {

// Fills `res` with an application/problem+json body: its title is the
// status's reason phrase, its type the title in kebab case.
void problem(httplib::Response &res, int status, std::string_view detail, std::string_view instance);

// The same where the original names the error itself: `type` is the last
// part of the URN ("invalid-ulid"), `title` its title ("Invalid ULID Format").
struct ProblemKind {
    std::string_view type, title;
};
void problem(httplib::Response &res, int status, ProblemKind kind, std::string_view detail, std::string_view instance);

// The same for an Error: its kind picks the status, its message is the
// detail; `overloaded` also says when to retry (Retry-After, seconds).
void problem(httplib::Response &res, const Error &error, std::string_view instance, int retry_after_s = 1);

// Standard reason phrase for a status ("Not Found").
std::string_view status_title(int status);

void json_response(httplib::Response &res, int status, std::string body);

// The headers of a Server-Sent Events answer, as the original sends them:
// no caching, no proxy buffering, and the connection kept open.
void sse_headers(const httplib::Request &req, httplib::Response &res);
// Their content type. Without the original's "; charset=utf-8" (SSE is
// UTF-8 by definition): cpp-httplib compresses every other text/ type for a
// client that accepts gzip or br, as every browser does, and its compressor
// holds the events back until the stream ends.
inline constexpr char kEventStream[] = "text/event-stream";

}  // namespace taskhost::http
