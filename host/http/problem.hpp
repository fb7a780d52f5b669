// RFC 9457 problem details: every error the API returns has this shape.
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

}  // namespace taskhost::http
