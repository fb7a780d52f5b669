// What keeps a web page from driving the host through a browser that can
// reach it (DNS rebinding, cross-site form posts), and the CORS policy for
// the pages that may. Everything here reads the request head only, so it
// can run before any body byte is read.
//
// The rules (README, "Browsers"):
//  - Host. A request must name the host: `localhost`, `127.0.0.1`, `[::1]`
//    (or `::1`), the address given to --host unless it is a wildcard, or an
//    entry of --allowed-hosts (`name` for any port, `name:port` for one;
//    `*` for any Host), each with any port. Anything else is 421
//    Misdirected Request (RFC 9110 15.5.20: the request was meant for an
//    authority this server does not answer for, which is what a rebound DNS
//    name is). With API keys and no --allowed-hosts, any Host is accepted:
//    a rebinding page has no key. An HTTP/1.1 request without a Host, with
//    two, or with one that is not a host[:port] is 400 (RFC 9112 3.2),
//    keys or not.
//  - Origin. Without API keys, a POST, PUT, PATCH or DELETE whose Origin is
//    neither the host's own (`http://` or `https://` followed by the Host
//    the request was sent to, when that Host was accepted by name and not
//    through `*`) nor one of --cors-origins is 403; `Origin: null` is
//    foreign. A request without Origin is not browser cross-origin traffic
//    (browsers send Origin on every cross-origin POST) and goes on.
//  - Content type. Without API keys, a POST, PUT or PATCH that has a body
//    (Content-Length other than 0, or any Transfer-Encoding) must say
//    `application/json` or `application/<x>+json` (parameters allowed), or it
//    is 415. This is the check that stops an HTML form or a `fetch` in
//    no-cors mode: a browser can only send text/plain, form-urlencoded or
//    multipart cross-origin without a preflight, and the preflight is only
//    answered for --cors-origins.
//  - With API keys, Origin and content type are not checked: a page cannot
//    send the key header cross-origin without a preflight, which fails for
//    any origin but --cors-origins, and clients with keys keep working as
//    they did.
//  - CORS. For an Origin listed in --cors-origins, every answer carries
//    Access-Control-Allow-Origin (that origin) and Access-Control-Expose-
//    Headers; a preflight (OPTIONS with Origin and Access-Control-Request-
//    Method) is answered 204 with the methods and headers the API takes.
//    A preflight from any other origin is 403. When --cors-origins is set,
//    every answer carries Vary: Origin. An OPTIONS that is not a preflight
//    is routed as before (405 naming the methods of the path).
//
// Called before the body is read, a refusal of a request that has a body
// must also close the connection: the unread body would otherwise be
// parsed as the next request on it, one that could pass these checks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace taskhost::http {

struct BrowserGuardOptions {
    // --allowed-hosts: more Host values the host answers to, lower case:
    // "name" (any port), "name:port", "[v6]" or "*" (any Host).
    std::vector<std::string> allowed_hosts;
    // --cors-origins: origins ("scheme://host[:port]", lower case, no
    // trailing slash) whose pages may call the API.
    std::vector<std::string> cors_origins;
    // --host: the address listened on; names the host unless it is a
    // wildcard (0.0.0.0, ::).
    std::string bound_host = "127.0.0.1";
    // Whether API keys are required, and in which header (preflights allow it).
    bool api_keys = false;
    std::string api_key_header = "X-API-Key";
};

// Normalises one --allowed-hosts entry (trimmed, lower case, an IPv6
// address bracketed); empty if it is blank. Throws std::invalid_argument
// naming what is wrong (a URL instead of a name, a bad port).
std::string normalize_allowed_host(std::string_view entry);
// The same for a --cors-origins entry: "scheme://host[:port]", no path.
std::string normalize_cors_origin(std::string_view entry);

// True if the request may go on. Otherwise `res` holds the answer (a
// problem+json refusal, or the 204 of a CORS preflight) and it returns
// false. Adds the CORS headers to `res` for an allowed Origin.
bool admit_browser_request(const BrowserGuardOptions &options, const httplib::Request &req, httplib::Response &res);

// Adds Vary: Origin (when CORS is configured) and, for an Origin listed in
// --cors-origins, Access-Control-Allow-Origin and -Expose-Headers. Adds
// nothing a second time, so it may run before and after admit_browser_request.
void add_cors_headers(const BrowserGuardOptions &options, const httplib::Request &req, httplib::Response &res);

}  // namespace taskhost::http
