// The web console (host/http/console/): its files are compiled in by CMake,
// each with its content type and an ETag taken from its SHA-256, and served
// with a strict Content-Security-Policy: the console runs only its own
// script and talks only to this host.
#pragma once

#include <span>
#include <string_view>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace taskhost::http {

struct ConsoleFile {
    std::string_view name;          // file name in host/http/console/
    std::string_view content_type;  // from its extension
    std::string_view etag;          // quoted, strong
    std::string_view body;
};

// Every console file (generated from host/http/console/ by CMake).
std::span<const ConsoleFile> console_files();
// The file called `name`, or null.
const ConsoleFile *find_console_file(std::string_view name);

// What every console answer carries: no inline script or style, no other
// origin, no framing, no form posts.
inline constexpr std::string_view kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Sets the headers every console answer carries (CSP, nosniff, no referrer,
// revalidate before each use).
void console_headers(httplib::Response &res);
// 200 with the file, or 304 when If-None-Match names its ETag.
void serve_console_file(const httplib::Request &req, httplib::Response &res, const ConsoleFile &file);
// The same for a body made at run time (its ETag is its SHA-256).
void serve_console_text(const httplib::Request &req, httplib::Response &res, std::string_view body,
                        std::string_view content_type);

}  // namespace taskhost::http
