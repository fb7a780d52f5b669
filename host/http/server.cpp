#include "http/server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>

#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/browser_guard.hpp"
#include "http/connection.hpp"
#include "http/console.hpp"
#include "http/elastic_pool.hpp"
#include "http/front_door.hpp"
#include "http/problem.hpp"
#include "metrics/metrics.hpp"
#include "util/text.hpp"
#include "util/ulid.hpp"

namespace taskhost::http {

namespace {

// Answers 405 with the methods the path does support.
void method_not_allowed(const httplib::Request &req, httplib::Response &res, std::string_view allow) {
    res.set_header("Allow", std::string(allow));
    problem(res, 405,
            "Method " + req.method + " is not allowed on " + req.path + " (allowed: " + std::string(allow) + ")",
            req.path);
}

// The console's pages at their own paths, the rest of its files under
// /console/ (console.hpp); nullopt for a path outside the console.
std::optional<std::string_view> console_route(std::string_view path) {
    if (path == "/") return "index.html";
    if (path == "/docs" || path == "/redoc") return "docs.html";
    if (path == "/manifest.json") return "manifest.json";
    constexpr std::string_view prefix = "/console/";
    if (path.substr(0, prefix.size()) == prefix) return path.substr(prefix.size());
    return std::nullopt;
}

}  // namespace

bool Api::dispatch(const httplib::Request &req, httplib::Response &res) {
    const std::string &m = req.method;
    std::string_view path = req.path;
    auto only = [&](std::string_view allow, std::string_view method, auto &&handler) {
        if (m == method) handler();
        else method_not_allowed(req, res, allow);
        return true;
    };
    if (path == "/health") return only("GET", "GET", [&] { health(req, res); });
    if (path == "/health/$stream") return only("GET", "GET", [&] { health_stream(req, res); });
    if (path == "/ping") return only("GET", "GET", [&] { ping(req, res); });
    if (path == "/metrics") return only("GET", "GET", [&] { metrics(req, res); });
    if (path == "/openapi.json") return only("GET", "GET", [&] { openapi(req, res); });
    if (std::optional<std::string_view> file = console_route(path)) {
        const ConsoleFile *found = *file == "settings.json" ? nullptr : find_console_file(*file);
        if (*file != "settings.json" && !found) return false;
        // HEAD too, for uptime checks of the page; the library sends no body.
        if (m != "GET" && m != "HEAD") method_not_allowed(req, res, "GET, HEAD");
        else if (found) serve_console_file(req, res, *found);
        else console_settings(req, res);
        return true;
    }
    constexpr std::string_view prefix = "/api/v1/";
    if (path.substr(0, prefix.size()) != prefix) return false;
    Segments seg = split(path.substr(prefix.size()), '/');
    for (auto s : seg)
        if (s.empty()) return false;  // "//" or a trailing slash: no such resource
    const std::string_view top = seg[0];
    const size_t n = seg.size();

    if (top == "info" && n == 1) return only("GET", "GET", [&] { info(req, res); });
    if (top == "system") {
        if (n == 1) return only("GET", "GET", [&] { system(req, res); });
        if (n == 2 && seg[1] == "apps") return only("GET", "GET", [&] { system_apps(req, res, false); });
        if (n == 2 && seg[1] == "hosts") return only("GET", "GET", [&] { system_hosts(req, res); });
        if (n == 3 && seg[1] == "apps" && seg[2] == "$schema")
            return only("GET", "GET", [&] { system_apps(req, res, true); });
        return false;
    }
    if (top == "plugins") {
        if (n == 1) return only("GET", "GET", [&] { plugins(req, res); });
        if (n == 2 && seg[1] == "$reload") return only("POST", "POST", [&] { reload_plugins(req, res); });
        return false;
    }
    if (top == "tasks") {
        if (n == 1) return only("GET", "GET", [&] { list_tasks(req, res); });
        if (n == 2) return only("GET", "GET", [&] { get_task(req, res, seg[1]); });
        if (n == 3 && seg[2] == "$execute") return only("POST", "POST", [&] { execute_task(req, res, seg[1]); });
        return false;
    }
    if (top == "jobs") {
        if (n == 1) {
            if (m == "GET") list_jobs(req, res);
            else if (m == "DELETE") delete_jobs(req, res);
            else method_not_allowed(req, res, "GET, DELETE");
            return true;
        }
        if (n == 2 && seg[1] == "$schema") return only("GET", "GET", [&] { job_schema(req, res); });
        if (n == 2) {
            if (m == "GET") get_job(req, res, seg[1]);
            else if (m == "DELETE") delete_job(req, res, seg[1]);
            else method_not_allowed(req, res, "GET, DELETE");
            return true;
        }
        if (n == 3 && seg[2] == "$cancel") return only("POST", "POST", [&] { cancel_job(req, res, seg[1]); });
        if (n == 3 && seg[2] == "$stream") return only("GET", "GET", [&] { stream_job(req, res, seg[1]); });
        return false;
    }
    if (top == "artifacts") {
        if (n == 1) {
            if (m == "GET") list_artifacts(req, res);
            else if (m == "POST") create_artifact(req, res);
            else method_not_allowed(req, res, "GET, POST");
            return true;
        }
        if (n == 2 && seg[1] == "$stats") return only("GET", "GET", [&] { artifact_stats(req, res); });
        if (n == 2 && seg[1] == "$schema") return only("GET", "GET", [&] { artifact_schema(req, res); });
        if (n == 2) {
            if (m == "GET") get_artifact(req, res, seg[1]);
            else if (m == "PUT") update_artifact(req, res, seg[1]);
            else if (m == "DELETE") delete_artifact(req, res, seg[1]);
            else method_not_allowed(req, res, "GET, PUT, DELETE");
            return true;
        }
        if (n == 3 && seg[2] == "$tree") return only("GET", "GET", [&] { artifact_tree(req, res, seg[1], false); });
        if (n == 3 && seg[2] == "$expand") return only("GET", "GET", [&] { artifact_tree(req, res, seg[1], true); });
        return false;
    }
    if (top == "schedules") {
        if (n == 1) {
            if (m == "GET") list_schedules(req, res);
            else if (m == "POST") create_schedule(req, res);
            else method_not_allowed(req, res, "GET, POST");
            return true;
        }
        if (n == 2) {
            if (m == "GET") get_schedule(req, res, seg[1]);
            else if (m == "PUT") update_schedule(req, res, seg[1]);
            else if (m == "DELETE") delete_schedule(req, res, seg[1]);
            else method_not_allowed(req, res, "GET, PUT, DELETE");
            return true;
        }
        if (n == 3 && seg[2] == "$trigger") return only("POST", "POST", [&] { trigger_schedule(req, res, seg[1]); });
        return false;
    }
    return false;
}

// cpp-httplib parses and answers one request on a stream the front door
// hands it; its own accept loop and keep-alive handling are not used.
class RequestProcessor final : public httplib::Server {
public:
    // The library ends a streamed response when it thinks its listening
    // socket is closed; it has none here, so it is told when the host
    // serves and when it stops.
    void set_serving(bool serving) { svr_sock_ = serving ? 0 : INVALID_SOCKET; }

    // Whether the connection may carry another request.
    bool process(httplib::Stream &stream, bool last) {
        bool closed = false;
        return process_request(stream, last, closed, nullptr) && !closed;
    }
};

Server::Server(ServerOptions options, Services services)
    : options_(std::move(options)), services_(services), processor_(std::make_unique<RequestProcessor>()) {}

Server::~Server() {
    stop();
    door_.reset();
    pool_.reset();
}

namespace {

// The client's X-Request-ID when it is a plain token (a proxy in front
// made it and logged it), else a new ULID: one id names the request in
// every log.
std::string request_id(const httplib::Request &req) {
    const std::string &given = req.get_header_value("X-Request-ID");
    const bool plain = !given.empty() && given.size() <= 128 && std::all_of(given.begin(), given.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._:+/=-").find(c) != std::string_view::npos;
    });
    return plain ? given : new_ulid_string();
}

// The request carries a body (by its framing) that has not been read yet.
bool body_unread(const Connection *c) { return c && c->body().kind != BodyFraming::Kind::none && !c->body_fully_read(); }

}  // namespace

void Server::install_routes() {
    api_ = std::make_shared<Api>(options_, services_);
    httplib::Server &server = *processor_;
    // Responses are counted when their status is decided, before they are
    // sent, so a client that has its answer finds it in /metrics.
    metrics::Metrics &metrics = services_.metrics;
    auto handler = [api = api_, &metrics](const httplib::Request &req, httplib::Response &res) {
        if (!api->dispatch(req, res)) problem(res, 404, "No resource at " + req.path, req.path);
        metrics.count_response(res.status == -1 ? 200 : res.status);
    };
    // One catch-all per method; Api::dispatch does the routing (cheaper than a
    // regex per route, and it knows when to answer 405 instead of 404).
    server.Get(".*", handler);
    server.Options(".*", handler);
    // Methods that may carry a body read it here, counting every byte
    // (chunked or not, compressed or not) against the limit as it arrives;
    // a body without framing is no body (RFC 9112), not "read to the end".
    const size_t max_body = options_.max_body_bytes;
    auto with_body = [handler, max_body, &metrics](const httplib::Request &req, httplib::Response &res,
                                                   const httplib::ContentReader &read) {
        Connection *c = current_connection();
        if (c && c->body().kind != BodyFraming::Kind::none) {
            // The library hands the request as const; it owns a mutable one.
            std::string &body = const_cast<httplib::Request &>(req).body;
            bool too_large = false;
            const bool complete = read([&](const char *data, size_t n) {
                if (body.size() + n > max_body) {
                    too_large = true;
                    return false;
                }
                body.append(data, n);
                return true;
            });
            if (!complete) {
                c->close_after_response();
                if (too_large || c->body_over_limit())
                    problem(res, 413,
                            "The request body is larger than the " + std::to_string(max_body) +
                                " bytes the server accepts",
                            req.path);
                else problem(res, 400, "The request body could not be read", req.path);
                metrics.count_response(res.status);
                return;
            }
        }
        handler(req, res);
    };
    server.Post(".*", httplib::Server::HandlerWithContentReader(with_body));
    server.Put(".*", httplib::Server::HandlerWithContentReader(with_body));
    server.Patch(".*", httplib::Server::HandlerWithContentReader(with_body));
    server.Delete(".*", httplib::Server::HandlerWithContentReader(with_body));

    // Before any byte of a body is read: every response gets an id to quote
    // when reporting a problem, and a request the browser rules or the API
    // keys refuse is answered (its connection then closes: its body is
    // never read).
    // The browser rules (Host, Origin, JSON bodies, CORS preflight) come
    // first: a page's forged request is refused whatever key it lacks.
    const BrowserGuardOptions &browser = options_.browser;
    server.set_pre_routing_handler(
        [&auth = options_.auth, &browser, &metrics](const httplib::Request &req, httplib::Response &res) {
            res.set_header("X-Request-ID", request_id(req));
            add_cors_headers(browser, req, res);  // on refusals and the library's own errors too
            if (admit_browser_request(browser, req, res) && authorize(auth, req, res))
                return httplib::Server::HandlerResponse::Unhandled;
            metrics.count_response(res.status);
            return httplib::Server::HandlerResponse::Handled;
        });
    // A request whose body was not read to its end (refused early, too
    // large, malformed) leaves the stream at an unknown place: say so and
    // close.
    server.set_post_routing_handler([](const httplib::Request &, httplib::Response &res) {
        Connection *c = current_connection();
        if (c && (c->closing() || body_unread(c))) {
            c->close_after_response();
            res.headers.erase("Keep-Alive");
            res.set_header("Connection", "close");
        }
    });

    // Errors produced by cpp-httplib itself (bad request line, unknown
    // method, bad Range) get a problem+json body too.
    server.set_error_handler(
        httplib::Server::HandlerWithResponse([&metrics](const httplib::Request &req, httplib::Response &res) {
            if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours, counted
            metrics.count_response(res.status);
            std::string detail;
            switch (res.status) {
                case 413: detail = "The request body is larger than the server accepts"; break;
                case 414: detail = "The request URI is too long"; break;
                case 400: detail = "The request could not be parsed"; break;
                default: detail = std::string(status_title(res.status)); break;
            }
            problem(res, res.status, detail, req.path);
            return httplib::Server::HandlerResponse::Handled;
        }));
    server.set_logger([](const httplib::Request &req, const httplib::Response &res) {
        spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
    });
    server.set_exception_handler(
        [&metrics](const httplib::Request &req, httplib::Response &res, std::exception_ptr ep) {
            std::string what = "unexpected error";
            try {
                if (ep) std::rethrow_exception(ep);
            } catch (const std::exception &e) {
                what = e.what();
            } catch (...) {
            }
            spdlog::error("{} {}: unhandled exception: {}", req.method, req.path, what);
            problem(res, 500, "Internal error: " + what, req.path);
            metrics.count_response(500);
        });
    server.set_keep_alive_max_count(options_.keep_alive_max_requests);
    server.set_keep_alive_timeout(static_cast<time_t>(std::ceil(options_.keep_alive_timeout_s)));
    server.set_payload_max_length(options_.max_body_bytes);
}

std::string Server::refusal(int status, const std::string &detail, std::string_view head) {
    services_.metrics.count_response(status);
    // The fields the answer depends on (Origin, for CORS), read off the
    // raw head as far as it goes.
    httplib::Request req;
    for (std::string_view line : split(head.substr(0, head.find("\r\n\r\n")), '\n')) {
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon != 6) continue;
        if (!std::equal(line.begin(), line.begin() + 6, "origin", [](char a, char b) { return (a | 0x20) == b; }))
            continue;
        req.set_header("Origin", std::string(trim(line.substr(colon + 1))));
    }
    httplib::Response res;
    res.set_header("X-Request-ID", new_ulid_string());
    if (status == 503) res.set_header("Retry-After", "1");
    add_cors_headers(options_.browser, req, res);
    problem(res, status, detail, "");
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(status_title(status)) + "\r\n";
    for (const auto &[name, value] : res.headers) out += name + ": " + value + "\r\n";
    out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
    out += "Connection: close\r\n\r\n";
    out += res.body;
    return out;
}

namespace {

// Each connection is a descriptor (and a refused one lingers for a moment):
// raise the soft limit toward the hard one so --max-connections can be
// reached, and say so when it cannot.
void allow_descriptors_for(size_t connections) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t wanted = static_cast<rlim_t>(connections) * 2 + 256;
    if (limit.rlim_cur >= wanted) return;
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < wanted)
        spdlog::warn("open files are limited to {} (RLIMIT_NOFILE): fewer than --max-connections {} may be "
                     "served; beyond it new connections wait (raise the limit, e.g. LimitNOFILE= in systemd)",
                     static_cast<unsigned long long>(limit.rlim_cur), connections);
}

}  // namespace

Result<void> Server::bind() {
    install_routes();
    allow_descriptors_for(options_.max_connections);
    auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
    FrontDoorLimits limits;
    limits.head.max_head_bytes = options_.max_header_bytes;
    limits.head.max_fields = options_.max_header_fields;
    limits.head.max_body_bytes = options_.max_body_bytes;
    limits.header_timeout = ms(options_.header_timeout_s);
    limits.keep_alive_timeout = ms(options_.keep_alive_timeout_s);
    limits.max_connections = options_.max_connections;
    limits.max_requests_per_connection = options_.keep_alive_max_requests;
    pool_ = std::make_unique<ElasticPool>(options_.http_threads_initial, options_.http_threads_max);
    door_ = std::make_unique<FrontDoor>(
        limits, *pool_, [this](Connection &c, bool last) { return processor_->process(c, last); },
        [this](int status, const std::string &detail, std::string_view head) {
            return refusal(status, detail, head);
        });
    auto port = door_->listen(options_.host, options_.port, options_.listen_backlog);
    if (!port) return std::move(port).error();
    bound_port_ = *port;
    processor_->set_serving(true);
    return {};
}

void Server::serve() {
    door_->run();
    pool_->shutdown();
}

void Server::stop() {
    processor_->set_serving(false);
    if (api_) api_->stop_streams();
    if (door_) door_->stop();
}

}  // namespace taskhost::http
