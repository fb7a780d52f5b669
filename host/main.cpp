// taskhost: flags and environment → configuration → wiring; signals.
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <spdlog/fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <taskhost/abi.h>
#include <CLI/CLI.hpp>

#include "http/server.hpp"
#include "exec/in_process.hpp"
#include "jobs/job_manager.hpp"
#include "metrics/metrics.hpp"
#include "plugins/manager.hpp"
#include "plugins/watcher.hpp"
#include "registry/registry.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

struct Config {
    std::string plugins_dir = "plugins";
    std::string db = "taskhost.db";
    std::string host = "127.0.0.1";
    int port = 8000;
    size_t max_concurrency = 4;
    size_t queue_size = 10000;
    std::string log_level = "info";
    size_t max_body_bytes = 10 * 1024 * 1024;
    size_t http_threads = 1024;
    std::string runtime_dir;
    bool watch = false;
    int watch_quiet_ms = 300;
    std::string api_keys;
    std::string api_keys_file;
    std::string api_key_header = "X-API-Key";
};

// Reloads requested by SIGHUP are coalesced: a burst of signals while a
// reload runs causes exactly one more reload, never a queue of them.
class ReloadTrigger {
public:
    void request() {
        {
            std::lock_guard lock(mu_);
            pending_ = true;
        }
        cv_.notify_one();
    }
    void stop() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_one();
    }
    // Blocks until a reload is wanted; false when stopping.
    bool wait() {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return pending_ || stopping_; });
        if (stopping_) return false;
        pending_ = false;
        return true;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool pending_ = false;
    bool stopping_ = false;
};

}  // namespace

int main(int argc, char **argv) {
    Config cfg;
    CLI::App app{"taskhost: serves the tasks of compiled plugins over HTTP as durable jobs"};
    app.set_version_flag("--version", std::string("taskhost ") + TASKHOST_VERSION + " (plugin ABI " +
                                          std::to_string(TH_ABI_MAJOR) + "." + std::to_string(TH_ABI_MINOR) +
                                          ", SQLite " + sqlite3_libversion() + ", cpp-httplib " + CPPHTTPLIB_VERSION +
                                          ")");
    app.add_option("--plugins", cfg.plugins_dir, "Folder scanned for plugin .so files")
        ->envname("TASKHOST_PLUGINS")
        ->capture_default_str();
    app.add_option("--db", cfg.db, "SQLite database file, or :memory:")->envname("TASKHOST_DB")->capture_default_str();
    app.add_option("--host", cfg.host, "Address to listen on")->envname("TASKHOST_HOST")->capture_default_str();
    app.add_option("--port", cfg.port, "Port to listen on (0 = any free port)")
        ->envname("TASKHOST_PORT")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    app.add_option("--max-concurrency", cfg.max_concurrency, "Worker threads running jobs")
        ->envname("TASKHOST_MAX_CONCURRENCY")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--queue-size", cfg.queue_size, "Jobs waiting for a worker before $execute answers 503")
        ->envname("TASKHOST_QUEUE_SIZE")
        ->check(CLI::Range(1, 100000000))
        ->capture_default_str();
    app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error or off")
        ->envname("TASKHOST_LOG_LEVEL")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->capture_default_str();
    app.add_option("--max-body-bytes", cfg.max_body_bytes, "Largest request body accepted (larger: 413)")
        ->envname("TASKHOST_MAX_BODY_BYTES")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--http-threads", cfg.http_threads,
                   "Most HTTP connections served at once (each open keep-alive or SSE connection holds one)")
        ->envname("TASKHOST_HTTP_THREADS")
        ->check(CLI::Range(4, 100000))
        ->capture_default_str();
    app.add_option("--runtime-dir", cfg.runtime_dir,
                   "Where private copies of plugins are loaded from (default: a fresh folder under $TMPDIR)")
        ->envname("TASKHOST_RUNTIME_DIR");
    app.add_flag("--watch", cfg.watch, "Also reload when the plugins folder changes (inotify, debounced)")
        ->envname("TASKHOST_WATCH");
    app.add_option("--watch-quiet-ms", cfg.watch_quiet_ms, "With --watch: reload after the folder is quiet this long")
        ->envname("TASKHOST_WATCH_QUIET_MS")
        ->check(CLI::Range(10, 60000))
        ->capture_default_str();
    app.add_option("--api-keys", cfg.api_keys,
                   "Comma-separated API keys; when given, every request but /, /docs, /redoc, /openapi.json and "
                   "/health must send one (prefer the variable or --api-keys-file: flags show in ps)")
        ->envname("TASKHOST_API_KEYS");
    app.add_option("--api-keys-file", cfg.api_keys_file, "File of API keys, one per line ('#' starts a comment)")
        ->envname("TASKHOST_API_KEYS_FILE");
    app.add_option("--api-key-header", cfg.api_key_header, "Header that carries the API key")
        ->envname("TASKHOST_API_KEY_HEADER")
        ->check([](const std::string &s) { return s.empty() ? std::string("must not be empty") : std::string(); })
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    auto logger = spdlog::stderr_color_mt("taskhost");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

    // Signals are taken by one thread with sigwait(): no handler runs in
    // arbitrary threads, so nothing unsafe can happen inside a handler.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    // A file size limit (ulimit -f) then fails the write (EFBIG) instead of
    // killing the host: the commit fails, callers get 503, /health says why.
    ::signal(SIGXFSZ, SIG_IGN);

    namespace fs = std::filesystem;
    if (cfg.runtime_dir.empty()) {
        const char *tmp = std::getenv("TMPDIR");
        cfg.runtime_dir = (fs::path(tmp && *tmp ? tmp : "/tmp") / ("taskhost-" + std::to_string(::getpid()))).string();
    }

    try {
        // Before anything runs: a bad key setting must not start (and then
        // cancel) the jobs recovered from the last run.
        taskhost::http::ServerOptions http_options;
        std::shared_ptr<taskhost::http::ApiKeys> api_keys;
        if (!cfg.api_keys.empty() || !cfg.api_keys_file.empty()) {
            api_keys = std::make_shared<taskhost::http::ApiKeys>(cfg.api_keys, cfg.api_keys_file);
            http_options.auth.keys = api_keys;
            http_options.auth.header = cfg.api_key_header;
            spdlog::info("API keys required ({} key(s), header {}) on every path but {}", api_keys->size(),
                         cfg.api_key_header, fmt::join(http_options.auth.exempt, ", "));
        } else if (cfg.host != "127.0.0.1" && cfg.host != "localhost" && cfg.host != "::1") {
            spdlog::warn(
                "listening on {} without API keys: anyone who can reach it can run tasks "
                "(see --api-keys-file)",
                cfg.host);
        }
        taskhost::store::SqliteStore::Options store_options;
        store_options.path = cfg.db;
        taskhost::store::SqliteStore store(store_options);
        taskhost::registry::Registry registry;
        taskhost::exec::InProcessExecutor executor(store, {cfg.max_concurrency, cfg.queue_size});
        taskhost::plugins::PluginManager plugins(
            {fs::path(cfg.plugins_dir), fs::path(cfg.runtime_dir)}, registry,
            [&executor](const th_plugin_desc &desc, const std::string &file) { return executor.run_init(desc, file); });
        if (!fs::is_directory(cfg.plugins_dir))
            spdlog::warn("plugins folder {} does not exist: serving no tasks until it does and a reload is requested",
                         cfg.plugins_dir);
        auto report = plugins.reload();
        spdlog::info("loaded {} plugin(s), refused {}, {} task(s) in {:.1f} ms", report.added.size(),
                     report.refused.size(), registry.snapshot()->tasks.size(), report.duration_ms);

        taskhost::metrics::Metrics metrics;
        taskhost::jobs::JobManager jobs(store, registry, executor, metrics);
        size_t requeued = jobs.recover();
        if (requeued > 0) spdlog::info("requeued {} job(s) that were pending when the host last stopped", requeued);
        jobs.start();

        http_options.host = cfg.host;
        http_options.port = cfg.port;
        http_options.max_body_bytes = cfg.max_body_bytes;
        http_options.http_threads_max = cfg.http_threads;
        taskhost::http::Server server(http_options, taskhost::http::Services{store, registry, jobs, plugins, metrics});
        std::string why;
        if (!server.bind(&why)) {
            spdlog::critical("{}", why);
            return 1;
        }

        ReloadTrigger trigger;
        std::unique_ptr<taskhost::plugins::FolderWatcher> watcher;
        if (cfg.watch) {
            watcher = std::make_unique<taskhost::plugins::FolderWatcher>(
                fs::path(cfg.plugins_dir), std::chrono::milliseconds(cfg.watch_quiet_ms), [&] { trigger.request(); });
            if (!watcher->start(&why)) {
                spdlog::critical("--watch: {}", why);
                return 1;
            }
        }

        std::thread reloader([&] {
            while (trigger.wait()) {
                if (api_keys && !cfg.api_keys_file.empty()) {
                    try {
                        spdlog::info("API keys reloaded from {}: {} key(s)", cfg.api_keys_file, api_keys->reload());
                    } catch (const std::exception &e) {
                        spdlog::error("API keys not reloaded, the previous ones stay: {}", e.what());
                    }
                }
                auto r = plugins.reload();
                spdlog::info("reload: {} added, {} replaced, {} removed, {} refused ({:.1f} ms)", r.added.size(),
                             r.replaced.size(), r.removed.size(), r.refused.size(), r.duration_ms);
            }
        });
        std::mutex served_mu;
        std::condition_variable served_cv;
        bool served = false;
        std::thread signal_thread([&] {
            for (;;) {
                int sig = 0;
                if (sigwait(&signals, &sig) != 0) continue;
                if (sig == SIGHUP) {
                    trigger.request();
                    continue;
                }
                spdlog::info("signal {}: shutting down", sig);
                // stop() is lost if serve() has not started yet: repeat it
                // until serve() has returned.
                std::unique_lock lock(served_mu);
                while (!served) {
                    server.stop();
                    served_cv.wait_for(lock, std::chrono::milliseconds(50));
                }
                return;
            }
        });

        // Tests and scripts read this line to learn the port (with --port 0).
        std::printf("taskhost listening on http://%s:%d\n", cfg.host.c_str(), server.port());
        std::fflush(stdout);
        spdlog::info("serving on http://{}:{} with {} worker(s), database {}", cfg.host, server.port(),
                     cfg.max_concurrency, store.url());
        server.serve();
        {
            std::lock_guard lock(served_mu);
            served = true;
        }
        served_cv.notify_all();

        // serve() returns after stop(); wake the signal thread if it is
        // still waiting (stop came from elsewhere) and wind down.
        pthread_kill(signal_thread.native_handle(), SIGTERM);
        signal_thread.join();
        watcher.reset();
        trigger.stop();
        reloader.join();
        spdlog::info("stopped");
    } catch (const std::exception &e) {
        spdlog::critical("fatal: {}", e.what());
        return 1;
    }
    return 0;
}
