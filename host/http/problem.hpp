// Response helpers: RFC 9457 problem details (every error the API returns
// has that shape), JSON answers and the headers of SSE answers.
#pragma once

#include <string>
#include <string_view>

#include <httplib.h>

namespace taskhost::http {

// Fills `res` with an application/problem+json body.
void problem(httplib::Response &res, int status, std::string_view detail, std::string_view instance);

// Standard reason phrase for a status ("Not Found").
std::string_view status_title(int status);

void json_response(httplib::Response &res, int status, std::string body);

// The headers of a Server-Sent Events answer, as the original sends them:
// no caching, no proxy buffering, and the connection kept open.
void sse_headers(const httplib::Request &req, httplib::Response &res);

}  // namespace taskhost::http
