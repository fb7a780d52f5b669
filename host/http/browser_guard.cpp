#include "http/browser_guard.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <httplib.h>

#include "http/problem.hpp"
#include "util/text.hpp"

namespace taskhost::http {

namespace {

constexpr std::string_view kExposed = "X-Request-ID, Location, Link, Retry-After, Idempotent-Replayed";
constexpr std::string_view kMethods = "GET, POST, PUT, DELETE";
constexpr std::string_view kMaxAge = "600";

std::string lower(std::string_view text) {
    std::string out(text);
    for (char &c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z'); }

// A Host value (or an origin's authority) split into its name, lower case
// and an IPv6 address bracketed, and its port (empty when absent).
struct Authority {
    std::string name;
    std::string port;
};

// RFC 3986 host [":" port], leniently: a bare IPv6 address ("::1") is taken
// as the bracketed one. nullopt if it is not such a thing.
std::optional<Authority> parse_authority(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::string s = lower(text);
    Authority a;
    if (s[0] == '[') {
        const size_t close = s.find(']');
        if (close == std::string::npos || close < 2) return std::nullopt;
        for (size_t i = 1; i < close; ++i)
            if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.') return std::nullopt;
        a.name = s.substr(0, close + 1);
        std::string_view rest = std::string_view(s).substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return std::nullopt;
            a.port = std::string(rest.substr(1));
        }
    } else if (std::count(s.begin(), s.end(), ':') > 1) {
        for (char c : s)
            if (!is_hex(c) && c != ':' && c != '.') return std::nullopt;
        a.name = "[" + s + "]";
    } else {
        const size_t colon = s.find(':');
        a.name = s.substr(0, colon);
        if (colon != std::string::npos) a.port = s.substr(colon + 1);
        if (a.name.empty()) return std::nullopt;
        // reg-name: unreserved, percent-encoded and sub-delims characters.
        for (char c : a.name)
            if (!is_alnum(c) && std::string_view("-._~%!$&'()*+,;=").find(c) == std::string_view::npos)
                return std::nullopt;
    }
    if (a.port.size() > 5 || !std::all_of(a.port.begin(), a.port.end(), is_digit)) return std::nullopt;
    return a;
}

bool is_loopback_name(const std::string &name) { return name == "localhost" || name == "127.0.0.1" || name == "[::1]"; }

bool is_wildcard_address(std::string_view host) {
    return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

// Whether `host` is one the host answers to by name (loopback, --host, an
// --allowed-hosts entry); `any` says whether --allowed-hosts has "*".
bool names_this_host(const BrowserGuardOptions &options, const Authority &host, bool &any) {
    any = false;
    if (is_loopback_name(host.name)) return true;
    if (!is_wildcard_address(options.bound_host)) {
        if (auto bound = parse_authority(options.bound_host); bound && bound->name == host.name) return true;
    }
    for (const auto &entry : options.allowed_hosts) {
        if (entry == "*") {
            any = true;
            continue;
        }
        auto allowed = parse_authority(entry);
        if (allowed && allowed->name == host.name && (allowed->port.empty() || allowed->port == host.port)) return true;
    }
    return false;
}

bool state_changing(const std::string &method) {
    return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

bool takes_body(const std::string &method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

// The headers the rules read, found in one pass over the request's (each
// lookup of the library's would walk its case-insensitive map again).
struct Head {
    size_t hosts = 0;
    std::string_view host;
    const std::string *origin = nullptr;
    const std::string *content_type = nullptr;
    const std::string *content_length = nullptr;
    bool transfer_encoding = false;
    bool preflight_method = false;  // Access-Control-Request-Method
};

bool iequals(std::string_view a, std::string_view lower_b) {
    if (a.size() != lower_b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != lower_b[i]) return false;
    }
    return true;
}

Head read_head(const httplib::Request &req) {
    Head h;
    for (const auto &[name, value] : req.headers) {
        switch (name.size()) {
            case 4:
                if (iequals(name, "host") && h.hosts++ == 0) h.host = value;
                break;
            case 6:
                if (!h.origin && iequals(name, "origin")) h.origin = &value;
                break;
            case 12:
                if (!h.content_type && iequals(name, "content-type")) h.content_type = &value;
                break;
            case 14:
                if (!h.content_length && iequals(name, "content-length")) h.content_length = &value;
                break;
            case 17: h.transfer_encoding |= iequals(name, "transfer-encoding"); break;
            case 29: h.preflight_method |= iequals(name, "access-control-request-method"); break;
            default: break;
        }
    }
    return h;
}

// A body follows the head: Transfer-Encoding of any kind, or a
// Content-Length other than zero (malformed ones count as a body).
bool has_body(const Head &h) {
    if (h.transfer_encoding) return true;
    if (!h.content_length) return false;
    return h.content_length->empty() || h.content_length->find_first_not_of('0') != std::string::npos;
}

// application/json or application/<anything>+json, with any parameters.
bool is_json_media_type(std::string_view content_type) {
    const std::string_view type = trim(content_type.substr(0, content_type.find(';')));
    constexpr std::string_view app = "application/", suffix = "+json";
    if (type.size() <= app.size() || !iequals(type.substr(0, app.size()), app)) return false;
    const std::string_view sub = type.substr(app.size());
    return iequals(sub, "json") ||
           (sub.size() > suffix.size() && iequals(sub.substr(sub.size() - suffix.size()), suffix));
}

bool cors_allows(const BrowserGuardOptions &options, std::string_view origin) {
    if (options.cors_origins.empty()) return false;
    const std::string normalized = lower(origin);
    return std::find(options.cors_origins.begin(), options.cors_origins.end(), normalized) !=
           options.cors_origins.end();
}

// The page that sent `origin` was served under the Host this request was
// sent to: http(s)://Host.
bool is_own_origin(std::string_view origin, const Authority &host) {
    const std::string o = lower(origin);
    std::string_view rest;
    if (o.rfind("http://", 0) == 0) rest = std::string_view(o).substr(7);
    else if (o.rfind("https://", 0) == 0) rest = std::string_view(o).substr(8);
    else return false;
    auto authority = parse_authority(rest);
    return authority && authority->name == host.name && authority->port == host.port;
}

bool refuse(httplib::Response &res, int status, std::string_view detail, const httplib::Request &req) {
    problem(res, status, detail, req.path);
    return false;
}

}  // namespace

std::string normalize_allowed_host(std::string_view entry) {
    entry = trim(entry);
    if (entry.empty()) return {};
    if (entry == "*") return "*";
    if (entry.find("://") != std::string_view::npos || entry.find('/') != std::string_view::npos)
        throw std::invalid_argument("'" + std::string(entry) + "' is not a host name (give it without scheme or path)");
    auto a = parse_authority(entry);
    if (!a)
        throw std::invalid_argument("'" + std::string(entry) + "' is not a host name or address with an optional port");
    return a->port.empty() ? a->name : a->name + ":" + a->port;
}

std::string normalize_cors_origin(std::string_view entry) {
    entry = trim(entry);
    if (entry.empty()) return {};
    std::string o = lower(entry);
    while (!o.empty() && o.back() == '/') o.pop_back();
    const size_t sep = o.find("://");
    const bool scheme_ok = sep != std::string::npos && sep > 0 &&
                           std::all_of(o.begin(), o.begin() + static_cast<std::ptrdiff_t>(sep),
                                       [](char c) { return is_alnum(c) || c == '+' || c == '-' || c == '.'; });
    std::optional<Authority> a;
    if (scheme_ok) a = parse_authority(std::string_view(o).substr(sep + 3));
    if (!a)
        throw std::invalid_argument("'" + std::string(entry) +
                                    "' is not an origin: give scheme://host[:port], as a browser sends it in Origin");
    const std::string scheme = o.substr(0, sep);
    // Browsers leave the default port out of Origin.
    if ((scheme == "http" && a->port == "80") || (scheme == "https" && a->port == "443")) a->port.clear();
    return scheme + "://" + a->name + (a->port.empty() ? "" : ":" + a->port);
}

namespace {

void add_cors_headers(const BrowserGuardOptions &options, const std::string *origin, httplib::Response &res) {
    if (options.cors_origins.empty()) return;
    // The answer depends on Origin whether or not this one is allowed.
    if (!res.has_header("Vary")) res.set_header("Vary", "Origin");
    if (!origin || res.has_header("Access-Control-Allow-Origin") || !cors_allows(options, *origin)) return;
    res.set_header("Access-Control-Allow-Origin", *origin);
    res.set_header("Access-Control-Expose-Headers", std::string(kExposed));
}

}  // namespace

void add_cors_headers(const BrowserGuardOptions &options, const httplib::Request &req, httplib::Response &res) {
    if (options.cors_origins.empty()) return;
    add_cors_headers(options, read_head(req).origin, res);
}

bool admit_browser_request(const BrowserGuardOptions &options, const httplib::Request &req, httplib::Response &res) {
    const Head head = read_head(req);
    // Host: RFC 9112 3.2 asks for a 400 when it is missing (HTTP/1.1),
    // repeated or invalid; a Host that is none of ours is 421.
    std::optional<Authority> host;
    if (head.hosts > 1) return refuse(res, 400, "The request has more than one Host header", req);
    if (head.hosts == 1) {
        host = parse_authority(head.host);
        if (!host)
            return refuse(
                res, 400,
                "Host header '" + std::string(head.host) + "' is not a host name or address with an optional port",
                req);
    } else if (req.version != "HTTP/1.0") {
        return refuse(res, 400, "An HTTP/1.1 request must send a Host header", req);
    }
    bool any_host = false;
    const bool named = host && names_this_host(options, *host, any_host);
    const bool host_restricted = !options.api_keys || !options.allowed_hosts.empty();
    if (host && !named && !any_host && host_restricted)
        return refuse(
            res, 421,
            "This host does not answer to Host: " + std::string(head.host) +
                " (it answers to localhost, 127.0.0.1, [::1], its --host address and --allowed-hosts; start it "
                "with --allowed-hosts " +
                host->name + " to serve that name)",
            req);

    add_cors_headers(options, head.origin, res);

    // A CORS preflight: answered here, before any API key is asked for
    // (browsers never send one on a preflight).
    if (req.method == "OPTIONS" && head.origin && head.preflight_method) {
        if (!cors_allows(options, *head.origin))
            return refuse(res, 403,
                          "CORS preflight from origin " + *head.origin + " refused: it is not one of --cors-origins",
                          req);
        res.status = 204;
        res.set_header("Access-Control-Allow-Methods", std::string(kMethods));
        res.set_header("Access-Control-Allow-Headers", "Content-Type, Idempotency-Key, " + options.api_key_header);
        res.set_header("Access-Control-Max-Age", std::string(kMaxAge));
        return false;
    }

    // With API keys, the key is what a page cannot forge.
    if (options.api_keys || !state_changing(req.method)) return true;

    if (head.origin && !cors_allows(options, *head.origin) && !(named && is_own_origin(*head.origin, *host)))
        return refuse(res, 403,
                      "Cross-origin " + req.method + " from origin " + *head.origin +
                          " refused: state-changing requests are accepted from the host's own origin and "
                          "--cors-origins only",
                      req);

    if (takes_body(req.method) && has_body(head)) {
        const std::string_view type = head.content_type ? std::string_view(*head.content_type) : std::string_view();
        if (!is_json_media_type(type))
            return refuse(res, 415,
                          "A " + req.method + " body must be JSON: send Content-Type: application/json (got " +
                              (type.empty() ? std::string("no Content-Type") : std::string(type)) + ")",
                          req);
    }
    return true;
}

}  // namespace taskhost::http
