// What the host is told at start: flags, or TASKHOST_* variables. Each
// component's settings are its own Options struct, defaults included; the
// flags only fill them in.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "exec/in_process.hpp"
#include "http/server.hpp"
#include "jobs/job_manager.hpp"
#include "exec/worker_pool.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace taskhost::app {

struct Config {
    bool process_isolation() const { return isolation == "process"; }
    std::string plugins_dir = "plugins";
    bool allow_insecure_plugins = false;
    std::string ignored_runtime_dir;  // --runtime-dir, gone: new versions load from memory
    double probe_timeout_s = 10;      // a new plugin version's trial load in a child; 0: none
    // --isolation: where tasks run. "process": worker processes, and the
    // host never maps plugin code (it learns each plugin from its trial
    // child, so probe_timeout_s must be above 0); "in-process": the host's
    // own threads.
    std::string isolation = "process";
    // --in-process-plugins: with process isolation, the plugins (by the name
    // their TASKHOST_PLUGIN declares) that still run in the host's threads.
    std::vector<std::string> in_process_plugins;
    std::string log_level = "info";
    bool watch = false;
    int watch_quiet_ms = 300;
    std::string api_keys;            // comma-separated
    std::string api_keys_file;       // one key per line
    double shutdown_timeout_s = 30;  // SIGTERM to exit, whatever the plugins do
    // --umask: the process's file mode creation mask, set before any file is
    // created (database, -wal, -shm, crash record): 077 makes them 0600.
    unsigned umask = 077;
    // --db: a SQLite file (or sqlite:// URL, or :memory:), or a PostgreSQL
    // URL; read_config() fills in the options of the store it names.
    std::string db = "taskhost.db";
    bool postgres() const { return !postgres_store.url.empty(); }
    store::PostgresStore::Options postgres_store;
    // --crash-record: where a crash of this host is recorded; empty: beside
    // a SQLite file, none with a memory database or PostgreSQL.
    std::string crash_record;
    store::SqliteStore::Options store = [] {
        store::SqliteStore::Options o;
        o.path = "taskhost.db";  // the store's own default is a memory database
        return o;
    }();
    exec::InProcessExecutor::Options executor;
    exec::WorkerPoolOptions workers;  // --worker-*: with --isolation process
    jobs::JobManager::Options jobs;
    http::ServerOptions http;
};

// An octal umask as text ("077", "0027"): its bits, or nullopt if it is not
// 1 to 4 octal digits with a value of at most 0777.
std::optional<unsigned> parse_umask(std::string_view text);

// The SQLite path a --db value names: a path, ":memory:", or a sqlite://
// URL ("sqlite:///abs/file.db", "sqlite://rel.db", "sqlite://:memory:").
std::string sqlite_path(const std::string &db);

// Reads flags and TASKHOST_* variables. Returns the configuration, or the
// exit status when the process should stop now (--help, --version, a bad
// flag: what to say has been printed).
std::variant<Config, int> read_config(int argc, char **argv);

}  // namespace taskhost::app
