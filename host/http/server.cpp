#include "http/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "http/api.hpp"
#include "http/elastic_pool.hpp"
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
    if (path == "/") return only("GET", "GET", [&] { landing(req, res); });
    if (path == "/metrics") return only("GET", "GET", [&] { metrics(req, res); });
    if (path == "/openapi.json") return only("GET", "GET", [&] { openapi(req, res); });
    if (path == "/docs") return only("GET", "GET", [&] { docs_page(req, res, false); });
    if (path == "/redoc") return only("GET", "GET", [&] { docs_page(req, res, true); });
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
        if (n == 1) return only("GET", "GET", [&] { list_jobs(req, res); });
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
    return false;
}

Server::Server(ServerOptions options, Services services)
    : options_(std::move(options)), services_(services), server_(std::make_unique<httplib::Server>()) {}

Server::~Server() { stop(); }

void Server::install_routes() {
    api_ = std::make_shared<Api>(options_, services_);
    // Responses are counted when their status is decided, before they are
    // sent, so a client that has its answer finds it in /metrics.
    metrics::Metrics &metrics = services_.metrics;
    auto handler = [api = api_, &auth = options_.auth, &metrics](const httplib::Request &req, httplib::Response &res) {
        // Every response carries an id to quote when reporting a problem.
        res.set_header("X-Request-ID", new_ulid_string());
        if (authorize(auth, req, res) && !api->dispatch(req, res))
            problem(res, 404, "No resource at " + req.path, req.path);
        metrics.count_response(res.status == -1 ? 200 : res.status);
    };
    // One catch-all per method; Api::dispatch does the routing (cheaper than a
    // regex per route, and it knows when to answer 405 instead of 404).
    server_->Get(".*", handler);
    server_->Post(".*", handler);
    server_->Put(".*", handler);
    server_->Delete(".*", handler);
    server_->Patch(".*", handler);
    server_->Options(".*", handler);

    // A POST without Content-Length or Transfer-Encoding has no body (RFC
    // 9112), but the library would try to read one and answer 400. `curl -X
    // POST` sends exactly that, so such requests are answered here, before
    // the library reads anything.
    server_->set_pre_routing_handler([handler](const httplib::Request &req, httplib::Response &res) {
        bool bodyless = !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
        if (bodyless && (req.method == "POST" || req.method == "PUT" || req.method == "PATCH")) {
            handler(req, res);
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });

    // Errors produced by cpp-httplib itself (bad request line, body too
    // large, unknown method) get a problem+json body too.
    server_->set_error_handler(
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
    server_->set_logger([](const httplib::Request &req, const httplib::Response &res) {
        spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
    });
    server_->set_exception_handler(
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
}

Result<void> Server::bind() {
    install_routes();
    size_t initial = options_.http_threads_initial, maximum = options_.http_threads_max;
    server_->new_task_queue = [initial, maximum] { return new ElasticPool(initial, maximum); };
    server_->set_keep_alive_max_count(options_.keep_alive_max_requests);
    server_->set_keep_alive_timeout(options_.keep_alive_timeout_s);
    server_->set_payload_max_length(options_.max_body_bytes);
    server_->set_tcp_nodelay(true);
    int *fd_slot = &listen_fd_;
    server_->set_socket_options([fd_slot](int sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        *fd_slot = sock;
    });
    if (options_.port == 0) bound_port_ = server_->bind_to_any_port(options_.host);
    else bound_port_ = server_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
    if (bound_port_ <= 0)
        return fail(ErrorKind::unavailable, "cannot listen on " + options_.host + ":" + std::to_string(options_.port));
    // The library listens with a backlog of 5 compiled in; listen() again
    // on the bound socket raises it, so bursts of new connections are not
    // refused.
    if (listen_fd_ >= 0) ::listen(listen_fd_, options_.listen_backlog);
    return {};
}

void Server::serve() { server_->listen_after_bind(); }

void Server::stop() {
    if (api_) api_->stop_streams();
    if (server_) server_->stop();
}

}  // namespace taskhost::http
