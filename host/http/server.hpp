// The HTTP API: routes, request parsing, problem+json errors, SSE.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/auth.hpp"
#include "http/browser_guard.hpp"
#include "util/result.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace taskhost::jobs {
class JobManager;
struct JobView;
}  // namespace taskhost::jobs
namespace taskhost::plugins {
class PluginManager;
}
namespace taskhost::registry {
class Registry;
}
namespace taskhost::store {
class Store;
}
namespace taskhost::metrics {
class Metrics;
}

namespace taskhost::http {

class ElasticPool;
class FrontDoor;
class RequestProcessor;

// How artifact levels are labelled in $tree / $expand.
struct Hierarchy {
    std::string name = "task_results";
    std::vector<std::string> level_labels = {"task_run", "output"};
    std::string label(int level) const;
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8000;
    size_t http_threads_initial = 16;
    size_t http_threads_max = 1024;  // one per request being served (a ?wait or a stream holds one)
    size_t max_connections = 4096;   // open at once; beyond: 503 and closed
    size_t max_waiters = 256;        // ?wait long-polls and streams at once; beyond: 503
    size_t keep_alive_max_requests = 100000;
    double keep_alive_timeout_s = 5;  // an idle connection is closed after this
    double header_timeout_s = 10;     // a request head must be complete within this
    size_t max_header_bytes = 64 * 1024;
    size_t max_header_fields = 100;
    int listen_backlog = 4096;
    size_t max_body_bytes = 10 * 1024 * 1024;
    double max_wait_s = 60;  // cap for ?wait=
    // How long $reload waits for its reload; a reload running longer makes
    // /health degraded.
    double reload_timeout_s = 30;
    size_t default_page_size = 100;
    size_t max_page_size = 1000;
    Hierarchy hierarchy;
    AuthOptions auth;                        // off unless API keys are given
    BrowserGuardOptions browser;             // Host, Origin and CORS rules
    std::string version = TASKHOST_VERSION;  // the CMake project's
};

// The host's reload thread, as POST /api/v1/plugins/$reload uses it.
class ReloadRequests {
public:
    virtual ~ReloadRequests() = default;
    // Asks for a reload and waits until `deadline` for one that started
    // after the request: its report (ReloadReport JSON); nullopt if it has
    // not finished by then (it goes on) or the waiters were released.
    virtual std::optional<std::string> request_and_wait(std::chrono::steady_clock::time_point deadline) = 0;
    // Every waiter returns now, and later ones at once: the host is stopping.
    virtual void release_waiters() = 0;
};

struct Services {
    store::Store &store;
    registry::Registry &registry;
    jobs::JobManager &jobs;
    plugins::PluginManager &plugins;
    metrics::Metrics &metrics;
    ReloadRequests *reloads;  // null: $reload reloads on the HTTP thread
};

class Api;

class Server {
public:
    Server(ServerOptions options, Services services);
    ~Server();

    // Binds the address; the reason if it cannot.
    Result<void> bind();
    int port() const { return bound_port_; }
    // Serves until stop() is called and every request being served has
    // been answered.
    void serve();
    void stop();

private:
    void install_routes();
    // A whole response refusing a request before the library sees it.
    std::string refusal(int status, const std::string &detail, std::string_view head);

    ServerOptions options_;
    Services services_;
    std::unique_ptr<RequestProcessor> processor_;
    std::unique_ptr<ElasticPool> pool_;
    std::unique_ptr<FrontDoor> door_;
    std::shared_ptr<Api> api_;
    int bound_port_ = 0;
};

}  // namespace taskhost::http
