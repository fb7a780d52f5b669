#include "app/config.hpp"

#include <httplib.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <taskhost/abi.h>
#include <CLI/CLI.hpp>
#include <unistd.h>

namespace taskhost::app {

namespace {

std::string trim_blanks(std::string_view text) {
    const size_t first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return std::string(text.substr(first, text.find_last_not_of(" \t") - first + 1));
}

}  // namespace

std::optional<unsigned> parse_umask(std::string_view text) {
    if (text.empty() || text.size() > 4) return std::nullopt;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '7') return std::nullopt;
        value = value * 8 + static_cast<unsigned>(c - '0');
    }
    if (value > 0777) return std::nullopt;
    return value;
}

std::string sqlite_path(const std::string &db) {
    constexpr std::string_view scheme = "sqlite://";
    if (!db.starts_with(scheme)) return db;
    return db.substr(scheme.size());  // "sqlite:///abs" keeps its leading slash
}

std::variant<Config, int> read_config(int argc, char **argv) {
    Config cfg;
    CLI::App app{"taskhost: serves the tasks of compiled plugins over HTTP as durable jobs"};
    app.footer(
        "Plugin authors: `taskhost plugin new NAME` writes a ready-to-build plugin project; `taskhost plugin check "
        "FILE.so` says whether a host would load a plugin, and its tasks (taskhost plugin --help). Operators: "
        "`taskhost migrate --db DB` brings a database's schema to this build's version (for --no-migrate).");
    app.set_version_flag("--version", std::string("taskhost ") + TASKHOST_VERSION + " (plugin ABI " +
                                          std::to_string(TH_ABI_MAJOR) + "." + std::to_string(TH_ABI_MINOR) +
                                          ", SQLite " + sqlite3_libversion() + ", libpq " + std::to_string(PQlibVersion() / 10000) + "." +
                                          std::to_string(PQlibVersion() % 100) + ", cpp-httplib " + CPPHTTPLIB_VERSION +
                                          ")");
    app.add_option("--plugins", cfg.plugins_dir, "Folder scanned for plugin .so files")
        ->envname("TASKHOST_PLUGINS")
        ->capture_default_str();
    app.add_option("--db", cfg.db,
                   "Where jobs and artifacts are kept: a SQLite file (or sqlite:// URL, or :memory:), or "
                   "postgresql://user@host:port/dbname for a fleet of hosts on one PostgreSQL")
        ->envname("TASKHOST_DB")
        ->capture_default_str();
    bool no_migrate = false;
    app.add_flag("--no-migrate", no_migrate,
                 "Do not migrate the database schema at start-up: refuse to start unless it is current "
                 "(run `taskhost migrate` first)")
        ->envname("TASKHOST_NO_MIGRATE");
    std::string sync = "full";
    app.add_option("--sync", sync,
                   "full: a job is acknowledged (202, ?wait's 200, any terminal state) only once the commit "
                   "that holds it is fsync'd, so it survives power loss and OS crashes; normal: commits survive "
                   "a crash of the host only (faster on slow disks). A :memory: database survives neither")
        ->check(CLI::IsMember({"full", "normal"}))
        ->envname("TASKHOST_SYNC")
        ->capture_default_str();
    app.add_option("--host-id", cfg.postgres_store.host_id,
                   "This host's name in a fleet (PostgreSQL): the jobs it runs carry it. Keep it across restarts, "
                   "so a restarted host fails its own interrupted jobs at once (default: hostname:port)")
        ->envname("TASKHOST_HOST_ID");
    app.add_option("--lease-s", cfg.postgres_store.lease_s,
                   "Seconds a fleet host may go unheard (PostgreSQL) before another fails its running jobs")
        ->envname("TASKHOST_LEASE_S")
        ->check(CLI::Range(0.3, 3600.0))
        ->capture_default_str();
    app.add_option("--crash-record", cfg.crash_record,
                   "File recording a crash of the host inside a plugin, read at the next start (default: beside "
                   "a SQLite file; none with :memory: or PostgreSQL)")
        ->envname("TASKHOST_CRASH_RECORD");
    app.add_option("--host", cfg.http.host, "Address to listen on")->envname("TASKHOST_HOST")->capture_default_str();
    app.add_option("--port", cfg.http.port, "Port to listen on (0 = any free port)")
        ->envname("TASKHOST_PORT")
        ->check(CLI::Range(0, 65535))
        ->capture_default_str();
    app.add_option("--max-concurrency", cfg.executor.workers, "Worker threads running jobs")
        ->envname("TASKHOST_MAX_CONCURRENCY")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--queue-size", cfg.executor.queue_capacity, "Jobs waiting for a worker before $execute answers 503")
        ->envname("TASKHOST_QUEUE_SIZE")
        ->check(CLI::Range(1, 100000000))
        ->capture_default_str();
    app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error or off")
        ->envname("TASKHOST_LOG_LEVEL")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->capture_default_str();
    app.add_option("--max-body-bytes", cfg.http.max_body_bytes, "Largest request body accepted (larger: 413)")
        ->envname("TASKHOST_MAX_BODY_BYTES")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--idempotency-ttl", cfg.jobs.idempotency_ttl_s,
                   "Seconds an Idempotency-Key names its job: a submit with the key within them gets that job")
        ->envname("TASKHOST_IDEMPOTENCY_TTL")
        ->check(CLI::Range(1.0, 365.0 * 86400))
        ->capture_default_str();
    app.add_option("--retain-finished", cfg.jobs.retention.finished_s,
                   "Seconds a finished job (completed, failed, canceled) is kept; older ones are deleted with their "
                   "result artifacts in the background (0: kept however old)")
        ->envname("TASKHOST_RETAIN_FINISHED")
        ->check(CLI::Range(0.0, 100.0 * 365 * 86400))
        ->capture_default_str();
    app.add_option("--retain-max-jobs", cfg.jobs.retention.max_jobs,
                   "Finished jobs kept at most: beyond the newest this many, the oldest are deleted as by "
                   "--retain-finished (0: no limit)")
        ->envname("TASKHOST_RETAIN_MAX_JOBS")
        ->capture_default_str();
    app.add_option("--retain-interval", cfg.jobs.retention.interval_s,
                   "Seconds between retention passes (0: a tenth of --retain-finished, from 1 to 60; 10 with only "
                   "--retain-max-jobs)")
        ->envname("TASKHOST_RETAIN_INTERVAL")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    app.add_option("--stop-grace-s", cfg.jobs.stop_grace_s,
                   "Seconds a job past its timeout, or canceled, may take to stop before it is given up on")
        ->envname("TASKHOST_STOP_GRACE_S")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    app.add_option("--probe-timeout-s", cfg.probe_timeout_s,
                   "Seconds a new plugin version may take to load and init in its trial child process "
                   "(0: load new versions in the host directly, untried)")
        ->envname("TASKHOST_PROBE_TIMEOUT_S")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    app.add_option("--isolation", cfg.isolation,
                   "Where tasks run: process (worker processes; the host never maps plugin code) or in-process "
                   "(the host's own threads: fastest, for trusted plugins)")
        ->envname("TASKHOST_ISOLATION")
        ->check([](const std::string &s) {
            return s == "process" || s == "in-process" ? std::string()
                                                       : std::string("must be process or in-process, not '" + s + "'");
        })
        ->capture_default_str();
    app.add_option_function<std::vector<std::string>>(
           "--in-process-plugins",
           [&cfg](const std::vector<std::string> &names) {
               cfg.in_process_plugins.clear();
               for (const auto &name : names) {
                   const std::string trimmed = trim_blanks(name);
                   if (!trimmed.empty()) cfg.in_process_plugins.push_back(trimmed);
               }
           },
           "With --isolation process: plugins that still run in the host's threads, by the name their "
           "TASKHOST_PLUGIN(...) declares, comma-separated")
        ->envname("TASKHOST_IN_PROCESS_PLUGINS")
        ->delimiter(',');
    app.add_option("--shutdown-timeout", cfg.shutdown_timeout_s,
                   "Seconds from SIGTERM to exit, whatever the plugins do (jobs still running are recorded as "
                   "interrupted)")
        ->envname("TASKHOST_SHUTDOWN_TIMEOUT")
        ->check(CLI::Range(0.0, 86400.0))
        ->capture_default_str();
    app.add_option("--reload-timeout-s", cfg.http.reload_timeout_s,
                   "Seconds POST /api/v1/plugins/$reload waits for its reload (longer: 503, the reload goes on); a "
                   "reload running longer makes /health degraded")
        ->envname("TASKHOST_RELOAD_TIMEOUT_S")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    app.add_option("--max-result-bytes", cfg.executor.max_result_bytes,
                   "Largest task result, or artifact saved by a task, accepted (larger: the job fails)")
        ->envname("TASKHOST_MAX_RESULT_BYTES")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 32))
        ->capture_default_str();
    app.add_option("--http-threads", cfg.http.http_threads_max,
                   "Most HTTP connections served at once (each open keep-alive or SSE connection holds one)")
        ->envname("TASKHOST_HTTP_THREADS")
        ->check(CLI::Range(4, 100000))
        ->capture_default_str();
    app.add_option("--max-connections", cfg.http.max_connections,
                   "Most client connections open at once (beyond: 503 and closed); idle ones cost no thread")
        ->envname("TASKHOST_MAX_CONNECTIONS")
        ->check(CLI::Range(size_t{1}, size_t{1000000}))
        ->capture_default_str();
    app.add_option("--max-waiters", cfg.http.max_waiters,
                   "Most ?wait long-polls and event streams at once, each holding an HTTP thread (beyond: 503); "
                   "must be below --http-threads")
        ->envname("TASKHOST_MAX_WAITERS")
        ->check(CLI::Range(size_t{1}, size_t{100000}))
        ->capture_default_str();
    app.add_option("--header-timeout", cfg.http.header_timeout_s,
                   "Seconds a request head may take to arrive in full before the connection is closed")
        ->envname("TASKHOST_HEADER_TIMEOUT")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--keep-alive-timeout", cfg.http.keep_alive_timeout_s,
                   "Seconds an idle keep-alive connection is kept before it is closed")
        ->envname("TASKHOST_KEEP_ALIVE_TIMEOUT")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--max-header-bytes", cfg.http.max_header_bytes,
                   "Largest request head (request line and header fields) accepted (larger: 431)")
        ->envname("TASKHOST_MAX_HEADER_BYTES")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 20))
        ->capture_default_str();
    app.add_option("--max-header-fields", cfg.http.max_header_fields,
                   "Most header fields in a request (more: 431)")
        ->envname("TASKHOST_MAX_HEADER_FIELDS")
        ->check(CLI::Range(size_t{8}, size_t{10000}))
        ->capture_default_str();
    app.add_option("--worker-memory", cfg.workers.limits.memory_bytes,
                   "With --isolation process: address space a worker process may use, in bytes (RLIMIT_AS; 0: no "
                   "limit); a job that needs more fails")
        ->envname("TASKHOST_WORKER_MEMORY")
        ->transform(CLI::AsSizeValue(false))
        ->capture_default_str();
    app.add_option("--worker-cpu-seconds", cfg.workers.limits.cpu_seconds,
                   "With --isolation process: CPU seconds one job may use in its worker process (RLIMIT_CPU; 0: no "
                   "limit); beyond, the worker is killed and the job fails")
        ->envname("TASKHOST_WORKER_CPU_SECONDS")
        ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 31))
        ->capture_default_str();
    app.add_option("--worker-max-jobs", cfg.workers.limits.max_jobs,
                   "With --isolation process: jobs a worker process runs before it is replaced (0: no limit)")
        ->envname("TASKHOST_WORKER_MAX_JOBS")
        ->capture_default_str();
    app.add_option("--worker-user", cfg.workers.limits.user,
                   "With --isolation process: user the worker processes run as (the host must run as root)")
        ->envname("TASKHOST_WORKER_USER");
    app.add_flag("--allow-insecure-plugins", cfg.allow_insecure_plugins,
                 "Load plugin files and a plugins folder that users other than the host's and root could write")
        ->envname("TASKHOST_ALLOW_INSECURE_PLUGINS");
    // Kept so that existing service files still start; warned about in run().
    app.add_option("--runtime-dir", cfg.ignored_runtime_dir, "Ignored (plugins are loaded from memory)")
        ->envname("TASKHOST_RUNTIME_DIR")
        ->group("");
    app.add_flag("--watch", cfg.watch, "Also reload when the plugins folder changes (inotify, debounced)")
        ->envname("TASKHOST_WATCH");
    app.add_option("--watch-quiet-ms", cfg.watch_quiet_ms, "With --watch: reload after the folder is quiet this long")
        ->envname("TASKHOST_WATCH_QUIET_MS")
        ->check(CLI::Range(10, 60000))
        ->capture_default_str();
    app.add_option("--api-keys", cfg.api_keys,
                   "Comma-separated API keys; when given, every request but the console's files (/, /docs, /redoc, "
                   "/manifest.json, /console/...), /openapi.json and /health must send one (prefer the variable or "
                   "--api-keys-file: flags show in ps)")
        ->envname("TASKHOST_API_KEYS");
    app.add_option("--api-keys-file", cfg.api_keys_file, "File of API keys, one per line ('#' starts a comment)")
        ->envname("TASKHOST_API_KEYS_FILE");
    app.add_option("--api-key-header", cfg.http.auth.header, "Header that carries the API key")
        ->envname("TASKHOST_API_KEY_HEADER")
        ->check([](const std::string &s) { return s.empty() ? std::string("must not be empty") : std::string(); })
        ->capture_default_str();
    std::string umask_text = "077";
    app.add_option("--umask", umask_text,
                   "File mode creation mask (octal) set at start-up, before any file is created: the database, "
                   "its -wal and -shm files and the crash record follow it (077: 0600)")
        ->envname("TASKHOST_UMASK")
        ->check([](const std::string &s) {
            return parse_umask(s) ? std::string() : std::string("must be an octal mask from 0 to 777, such as 077");
        })
        ->capture_default_str();
    // Comma lists, checked and normalised entry by entry (blanks dropped).
    auto normalized_list = [](std::string (*normalize)(std::string_view), std::vector<std::string> &out) {
        return [normalize, &out](const std::vector<std::string> &entries) {
            out.clear();
            for (const auto &entry : entries) {
                try {
                    if (std::string n = normalize(entry); !n.empty()) out.push_back(std::move(n));
                } catch (const std::invalid_argument &e) {
                    throw CLI::ValidationError(e.what());
                }
            }
        };
    };
    app.add_option_function<std::vector<std::string>>(
           "--allowed-hosts", normalized_list(http::normalize_allowed_host, cfg.http.browser.allowed_hosts),
           "Host header values served besides localhost, 127.0.0.1, [::1] and the --host address, comma-separated "
           "(name, name:port, or * for any; without API keys any other Host is refused with 421)")
        ->envname("TASKHOST_ALLOWED_HOSTS")
        ->delimiter(',');
    app.add_option_function<std::vector<std::string>>(
           "--cors-origins", normalized_list(http::normalize_cors_origin, cfg.http.browser.cors_origins),
           "Origins (scheme://host[:port]) whose web pages may call the API, comma-separated (CORS); default none")
        ->envname("TASKHOST_CORS_ORIGINS")
        ->delimiter(',');
    try {
        app.parse(argc, argv);
        // Every waiter holds a thread: with all of them waiting, nothing
        // would be left to answer anything else.
        if (cfg.http.max_waiters >= cfg.http.http_threads_max)
            throw CLI::ValidationError("--max-waiters", "must be below --http-threads (" +
                                                            std::to_string(cfg.http.http_threads_max) + ")");
        // In process isolation the host learns each plugin from its trial
        // child alone: without one it could describe none.
        if (cfg.process_isolation() && cfg.probe_timeout_s <= 0)
            throw CLI::ValidationError("--probe-timeout-s",
                                       "must be above 0 with --isolation process (the default): the host learns "
                                       "each plugin's tasks from its trial process, never by loading the plugin "
                                       "itself; --isolation in-process loads plugins in the host");
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }
    cfg.umask = *parse_umask(umask_text);
    if (store::is_postgres_url(cfg.db)) cfg.postgres_store.url = cfg.db;
    else cfg.store.path = sqlite_path(cfg.db);
    // hostname:port names a host that keeps its port; with --port 0 the
    // store makes a fresh id.
    if (cfg.postgres_store.host_id.empty() && cfg.http.port != 0) {
        char name[256] = {};
        ::gethostname(name, sizeof name - 1);
        cfg.postgres_store.host_id = std::string(name) + ":" + std::to_string(cfg.http.port);
    }
    cfg.postgres_store.migrate = cfg.store.migrate = !no_migrate;
    cfg.postgres_store.sync_full = cfg.store.sync_full = sync == "full";
    // What the browser rules need to know of the other settings: the
    // address listened on names the host, and with API keys (run() refuses
    // to start when these give none) the key is what a page cannot forge.
    cfg.http.browser.bound_host = cfg.http.host;
    cfg.http.browser.api_keys = !cfg.api_keys.empty() || !cfg.api_keys_file.empty();
    cfg.http.browser.api_key_header = cfg.http.auth.header;
    return cfg;
}

}  // namespace taskhost::app
