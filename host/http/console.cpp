#include "http/console.hpp"

#include <httplib.h>

#include "util/sha256.hpp"
#include "util/text.hpp"

namespace taskhost::http {

const ConsoleFile *find_console_file(std::string_view name) {
    for (const auto &file : console_files())
        if (file.name == name) return &file;
    return nullptr;
}

void console_headers(httplib::Response &res) {
    res.set_header("Content-Security-Policy", std::string(kConsoleCsp));
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    // Cached, but checked with the host before each use: a new binary's
    // console is seen at the next load, at the cost of a 304.
    res.set_header("Cache-Control", "no-cache");
    // The library compresses text for clients that accept it: a cache must
    // not hand the compressed body to one that does not.
    res.set_header("Vary", "Accept-Encoding");
}

namespace {

// If-None-Match (RFC 9110 13.1.2): "*" or a list of entity tags, compared
// weakly, so W/"x" matches "x".
bool etag_matches(std::string_view header, std::string_view etag) {
    for (std::string_view tag : split(header, ',')) {
        tag = trim(tag);
        if (tag == "*") return true;
        if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
        if (tag == etag) return true;
    }
    return false;
}

}  // namespace

void serve_console_file(const httplib::Request &req, httplib::Response &res, const ConsoleFile &file) {
    console_headers(res);
    res.set_header("ETag", std::string(file.etag));
    if (req.has_header("If-None-Match") && etag_matches(req.get_header_value("If-None-Match"), file.etag)) {
        res.status = 304;
        return;
    }
    res.status = 200;
    res.set_content(file.body.data(), file.body.size(), std::string(file.content_type));
}

void serve_console_text(const httplib::Request &req, httplib::Response &res, std::string_view body,
                        std::string_view content_type) {
    const std::string etag = '"' + to_hex(sha256(body)).substr(0, 32) + '"';
    serve_console_file(req, res, ConsoleFile{.name = {}, .content_type = content_type, .etag = etag, .body = body});
}

}  // namespace taskhost::http
