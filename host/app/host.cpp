#include "app/host.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "app/reloader.hpp"
#include "app/signals.hpp"
#include "exec/crash_record.hpp"
#include "exec/in_process.hpp"
#include "exec/process_executor.hpp"
#include "http/server.hpp"
#include "jobs/job_manager.hpp"
#include "metrics/metrics.hpp"
#include "plugins/faults.hpp"
#include "plugins/manager.hpp"
#include "plugins/watcher.hpp"
#include "registry/registry.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/clock.hpp"

namespace taskhost::app {

namespace fs = std::filesystem;

namespace {

bool is_loopback(const std::string &host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

// API keys, read before anything runs: a bad key setting must not start
// (and then cancel) the jobs recovered from the last run. Throws if the keys
// cannot be read or there are none.
std::shared_ptr<http::ApiKeys> read_api_keys(const Config &cfg, http::AuthOptions &auth) {
    if (cfg.api_keys.empty() && cfg.api_keys_file.empty()) {
        if (!is_loopback(cfg.http.host))
            spdlog::warn(
                "listening on {} without API keys: anyone who can reach it can run tasks "
                "(see --api-keys-file)",
                cfg.http.host);
        return nullptr;
    }
    auto keys = std::make_shared<http::ApiKeys>(cfg.api_keys, cfg.api_keys_file);
    auth.keys = keys;
    spdlog::info("API keys required ({} key(s), header {}) on every path but {}", keys->size(), auth.header,
                 fmt::join(auth.exempt, ", "));
    return keys;
}

// Tells the signal thread when serve() has returned: a stop() that comes
// before serve() has started is lost, so it is repeated until then. Also
// keeps when the stop was asked for: the shutdown timeout counts from then.
class Served {
public:
    void mark() {
        {
            std::lock_guard lock(mu_);
            served_ = true;
        }
        cv_.notify_all();
    }
    // False if serve() has not returned `timeout` after the first stop.
    template <class Stop>
    bool stop_until_served(Stop stop, std::chrono::steady_clock::duration timeout) {
        std::unique_lock lock(mu_);
        if (!stop_asked_at_) stop_asked_at_ = std::chrono::steady_clock::now();
        const auto deadline = *stop_asked_at_ + timeout;
        while (!served_) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            stop();
            cv_.wait_for(lock, std::chrono::milliseconds(50));
        }
        return true;
    }
    std::chrono::steady_clock::time_point stop_asked_at() {
        std::lock_guard lock(mu_);
        return stop_asked_at_.value_or(std::chrono::steady_clock::now());
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool served_ = false;
    std::optional<std::chrono::steady_clock::time_point> stop_asked_at_;
};

// The way out when threads are stuck in plugin code: every job still
// running recorded as interrupted, the store flushed, and exit at once,
// without unloading what such a thread may still be running. `also`
// names another part that would not stop.
[[noreturn]] void leave_with_threads_stuck(jobs::JobManager &jobs, store::Store &store, const std::string &also) {
    jobs.stop(std::chrono::steady_clock::now());
    store.flush_final();
    spdlog::warn("stopped at the shutdown deadline, leaving {} job thread(s) stuck in plugin code{}", jobs.load().stuck,
                 also.empty() ? "" : "; " + also + " would not return");
    exec::CrashRecord::exiting_normally();
    std::fflush(nullptr);
    ::_exit(0);
}

// Where a crash of this host is recorded: beside a database file (a memory
// database does not outlive the process, so its crashes only go to stderr).
std::string crash_record_path(const Config &cfg) {
    if (!cfg.crash_record.empty()) return cfg.crash_record;
    return cfg.postgres() || cfg.store.path == ":memory:" ? std::string() : cfg.store.path + ".crash";
}

// The plugins whose tasks this host runs: [{"name", "version", "tasks"}].
std::string plugins_json(const registry::Snapshot &snapshot) {
    std::map<std::string, std::pair<std::string, std::vector<std::string>>> plugins;
    for (const auto &[name, task] : snapshot.tasks) {
        auto &entry = plugins[task->plugin->name];
        entry.first = task->plugin->version;
        entry.second.push_back(name);
    }
    nlohmann::json out = nlohmann::json::array();
    for (const auto &[name, entry] : plugins)
        out.push_back({{"name", name}, {"version", entry.first}, {"tasks", entry.second}});
    return out.dump();
}

// The TaskInfo of each task this host runs: what lets another host of a
// fleet accept and check a job for it.
std::string tasks_json(const registry::Snapshot &snapshot) {
    std::string out = "[";
    for (const auto &[name, task] : snapshot.tasks) {
        if (out.size() > 1) out.push_back(',');
        out += task->info_json;
    }
    out.push_back(']');
    return out;
}

std::unique_ptr<store::Store> open_store(const Config &cfg) {
    if (cfg.postgres()) return std::make_unique<store::PostgresStore>(cfg.postgres_store);
    return std::make_unique<store::SqliteStore>(cfg.store);
}

// Files the host creates (the database, its -wal and -shm, the crash record)
// hold every job's params and results: they follow --umask, set before any
// of them exists. Said once at start-up: a database folder that others may
// list or write (files created there by others, renames), and a database
// file made before with a more open mode (SQLite gives its -wal and -shm
// files the database file's mode, whatever the umask).
void protect_data_at_rest(const Config &cfg) {
    const auto mask = static_cast<mode_t>(cfg.umask);
    ::umask(mask);
    if (cfg.postgres() || cfg.store.path == ":memory:") return;
    std::error_code ec;
    const fs::path file = fs::absolute(cfg.store.path, ec).lexically_normal();
    if (ec || !file.has_parent_path()) return;
    const fs::path folder = file.parent_path();
    struct stat st{};
    if (::stat(folder.c_str(), &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != 0)
        spdlog::warn("the database folder {} has mode {:04o}: other users may list or write it (chmod o-rwx)",
                     folder.string(), st.st_mode & 07777);
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & mask & 0777) != 0)
        spdlog::warn(
            "the database file {} has mode {:04o}, more open than --umask {:03o} allows; its -wal and -shm "
            "files get the same mode (chmod {:03o})",
            file.string(), st.st_mode & 07777, mask, 0666 & ~mask);
}

// Plugin faults are kept in the store.
class StoreFaultBook final : public plugins::FaultBook {
public:
    explicit StoreFaultBook(store::Store &store) : store_(store) {}
    model::PluginFaults record(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                               const std::string &reason) override {
        return store_.record_plugin_fault(plugin, kind, reason, thresholds_, now_us());
    }
    std::vector<model::PluginFaults> quarantined() override { return store_.quarantined_plugins(); }

private:
    store::Store &store_;
    const model::QuarantineThresholds thresholds_;
};

// A plugin version, as the fault book records it.
model::PluginFaults plugin_version(std::string_view hash, std::string_view file, std::string_view name,
                                   std::string_view version, std::string_view tasks_json) {
    model::PluginFaults plugin;
    plugin.hash = hash;
    plugin.file = file;
    plugin.name = name;
    plugin.version = version;
    plugin.tasks_json = tasks_json;
    return plugin;
}

// The plugin version whose code was on the thread that died is charged
// with the crash (it reached the host through a task, or its init).
void charge_crash(plugins::PluginManager &plugins, const exec::Crash &crash) {
    if (!crash.culprit || crash.culprit->hash.empty()) return;
    const exec::CodeInFlight &code = *crash.culprit;
    plugins.charge(plugin_version(code.hash, code.file, code.plugin, code.version, code.tasks_json),
                   model::PluginFaultKind::crash,
                   "crashed the host: " + crash.cause + " in task '" + code.task + "'" +
                       (code.job_id.empty() ? std::string() : " (job " + code.job_id + ")"));
}

void log_crash(const exec::Crash &crash) {
    if (crash.culprit)
        spdlog::error("the last run of this host died: {} in task '{}' of plugin {} {} ({}){}", crash.cause,
                      crash.culprit->task, crash.culprit->plugin, crash.culprit->version, crash.culprit->file,
                      crash.culprit->job_id.empty() ? "" : ", job " + crash.culprit->job_id);
    else spdlog::error("the last run of this host died: {}", crash.cause);
}

}  // namespace

int run(Config cfg) {
    protect_data_at_rest(cfg);  // first: before any file is created
    if (!cfg.ignored_runtime_dir.empty())
        spdlog::warn(
            "--runtime-dir / TASKHOST_RUNTIME_DIR is ignored: plugins are loaded from sealed in-memory "
            "copies and nothing is written to disk");
    std::shared_ptr<http::ApiKeys> api_keys = read_api_keys(cfg, cfg.http.auth);
    // Every thread that may run plugin code at once has a slot: workers and
    // submitters (at most the workers), and HTTP threads validating params.
    const std::string crash_path = crash_record_path(cfg);
    exec::CrashRecord::install(crash_path, cfg.executor.workers + cfg.http.http_threads_max + 2);
    const std::optional<exec::Crash> crash = crash_path.empty() ? std::nullopt : exec::CrashRecord::take(crash_path);
    if (crash) log_crash(*crash);

    // ---- start: each component uses only those started before it ----------
    std::unique_ptr<store::Store> store = open_store(cfg);
    registry::Registry registry;
    // A worker process that crashes charges its plugin version, as a crash
    // of the host would (set once the plugin manager exists).
    std::function<void(const exec::Target &, const std::string &)> charge_worker_crash;
    std::unique_ptr<exec::InProcessExecutor> executor;
    if (cfg.process_isolation())
        executor = std::make_unique<exec::ProcessExecutor>(
            *store, cfg.executor, cfg.workers, [&charge_worker_crash](const exec::Target &target, const std::string &why) {
                if (charge_worker_crash) charge_worker_crash(target, why);
            });
    else
        executor = std::make_unique<exec::InProcessExecutor>(*store, cfg.executor);
    StoreFaultBook faults(*store);
    plugins::PluginManager::Options plugin_options{cfg.plugins_dir, cfg.allow_insecure_plugins, &faults};
    if (cfg.probe_timeout_s > 0) {
        // The probe child is this very binary, even if the file was replaced since.
        const plugins::ProbeOptions probe{"/proc/self/exe",
                                          std::chrono::milliseconds(static_cast<int64_t>(cfg.probe_timeout_s * 1000))};
        plugin_options.probe = [probe](const UniqueFd &image, const std::string &file) {
            return plugins::probe_in_child(probe, image, file);
        };
    }
    if (cfg.process_isolation()) {
        // Plugins the host may map: those named; the others it knows only
        // from their trial child's report (read_config() keeps the probe on).
        plugin_options.in_process =
            [names = std::set<std::string>(cfg.in_process_plugins.begin(), cfg.in_process_plugins.end())](
                const std::string &plugin) { return names.count(plugin) > 0; };
        spdlog::info("isolation: process{}",
                     cfg.in_process_plugins.empty()
                         ? std::string()
                         : fmt::format(" (in the host: {})", fmt::join(cfg.in_process_plugins, ", ")));
    } else if (!cfg.in_process_plugins.empty()) {
        spdlog::warn(
            "--in-process-plugins / TASKHOST_IN_PROCESS_PLUGINS is ignored: with --isolation in-process "
            "every plugin runs in the host");
    }
    auto plugins = std::make_unique<plugins::PluginManager>(
        std::move(plugin_options), registry,
        [&executor = *executor](const th_plugin_desc &desc, const std::string &file, const std::string &hash) {
            return executor.run_init(desc, file, hash);
        });
    if (crash) charge_crash(*plugins, *crash);
    if (!fs::is_directory(cfg.plugins_dir))
        spdlog::warn("plugins folder {} does not exist: serving no tasks until it does and a reload is requested",
                     cfg.plugins_dir);
    const auto loaded = plugins->reload();
    spdlog::info("loaded {} plugin(s), refused {}, {} task(s) in {:.1f} ms", loaded.added.size(), loaded.refused.size(),
                 registry.snapshot()->tasks.size(), loaded.duration_ms);

    // What the fleet's hosts table shows of this host: from when the server
    // is bound (its address), and again after each reload (its plugins).
    std::mutex address_mu;
    std::string address;  // guarded by address_mu
    const auto describe_host = [&] {
        std::unique_lock lock(address_mu);
        if (address.empty()) return;
        const std::string bound = address;
        lock.unlock();
        const auto snapshot = registry.snapshot();
        store->describe_host(bound, TASKHOST_VERSION, plugins_json(*snapshot), tasks_json(*snapshot));
    };
    // The schedules plugins declare follow each load (once jobs exist).
    std::atomic<jobs::RecurringJobs *> schedules{nullptr};
    auto reloader = std::make_unique<Reloader>([&] {
        if (api_keys && !cfg.api_keys_file.empty()) {
            try {
                spdlog::info("API keys reloaded from {}: {} key(s)", cfg.api_keys_file, api_keys->reload());
            } catch (const std::exception &e) {
                spdlog::error("API keys not reloaded, the previous ones stay: {}", e.what());
            }
        }
        const auto r = plugins->reload();
        spdlog::info("reload: {} added, {} replaced, {} removed, {} refused ({:.1f} ms)", r.added.size(),
                     r.replaced.size(), r.removed.size(), r.refused.size(), r.duration_ms);
        if (r.duration_ms > cfg.http.reload_timeout_s * 1000) {
            const auto last = plugins->reload_progress().last;
            spdlog::warn("the reload took {:.1f} s, longer than --reload-timeout-s ({} s){}", r.duration_ms / 1000,
                         cfg.http.reload_timeout_s,
                         last && !last->slowest_file.empty()
                             ? fmt::format("; slowest: {} ({:.1f} s)", last->slowest_file, last->slowest_s)
                             : std::string());
        }
        describe_host();
        if (auto *recurring = schedules.load()) recurring->sync_declared(*registry.snapshot());
        return r.to_json();
    });

    metrics::Metrics metrics;
    if (crash) metrics.previous_run_crashed();
    // A job whose code did not stop within its grace charges its plugin
    // version with a hang; a version that this quarantines is withdrawn.
    cfg.jobs.on_stuck = [&plugins = *plugins, &reloader = *reloader](const registry::Task &task,
                                                                     const std::string &why) {
        const registry::PluginInstance &p = *task.plugin;
        const model::PluginFaults after =
            plugins.charge(plugin_version(p.hash, p.file, p.name, p.version, p.tasks_json),
                           model::PluginFaultKind::hang, "task '" + task.name + "' " + why);
        if (after.quarantined_at != 0) reloader.request();
    };
    charge_worker_crash = [&plugins = *plugins, &reloader = *reloader](const exec::Target &target,
                                                                       const std::string &why) {
        const model::PluginFaults after = plugins.charge(
            plugin_version(target.hash, target.file, target.plugin, target.version, target.tasks_json),
            model::PluginFaultKind::crash, why);
        if (after.quarantined_at != 0) reloader.request();
    };
    auto jobs = std::make_unique<jobs::JobManager>(*store, registry, *executor, metrics, cfg.jobs);
    jobs->recurring().sync_declared(*registry.snapshot());
    schedules.store(&jobs->recurring());
    // Reloads stop reaching the schedules before `jobs` goes, on every way out.
    struct ForgetSchedules {
        std::atomic<jobs::RecurringJobs *> &schedules;
        ~ForgetSchedules() { schedules.store(nullptr); }
    } forget_schedules{schedules};
    if (const size_t requeued = jobs->recover(crash); requeued > 0)
        spdlog::info("requeued {} job(s) that were pending when the host last stopped", requeued);
    jobs->start();

    auto server = std::make_unique<http::Server>(
        cfg.http, http::Services{*store, registry, *jobs, *plugins, metrics, reloader.get()});
    if (auto bound = server->bind(); !bound) {
        spdlog::critical("{}", bound.error().message);
        return 1;
    }

    std::unique_ptr<plugins::FolderWatcher> watcher;
    if (cfg.watch) {
        watcher = std::make_unique<plugins::FolderWatcher>(
            fs::path(cfg.plugins_dir), std::chrono::milliseconds(cfg.watch_quiet_ms), [&] { reloader->request(); });
        if (auto watching = watcher->start(); !watching) {
            spdlog::critical("--watch: {}", watching.error().message);
            return 1;
        }
    }
    Served served;
    auto signals = std::make_unique<SignalThread>(
        [&] {
            // A request behind a reload that overran would otherwise wait without a word.
            const auto running = plugins->reload_progress().running;
            const double running_s =
                running ? std::chrono::duration<double>(std::chrono::steady_clock::now() - running->started).count()
                        : 0;
            if (running_s > cfg.http.reload_timeout_s)
                spdlog::warn("SIGHUP: a reload has been running for {:.0f} s{}; this request waits behind it",
                             running_s, running->loading.empty() ? "" : " (loading " + running->loading + ")");
            reloader->request();
        },
        [&] {
            // serve() joins the HTTP threads: one stuck in plugin code (a
            // task's validate, a quick task run on its request's thread)
            // would hold it, and the whole stop, forever.
            if (!served.stop_until_served([&] { server->stop(); }, seconds_duration(cfg.shutdown_timeout_s)))
                leave_with_threads_stuck(*jobs, *store,
                                         "the HTTP server's threads (a request in plugin code, or an idle "
                                         "keep-alive connection)");
        });

    {
        std::lock_guard lock(address_mu);
        address = fmt::format("http://{}:{}", cfg.http.host, server->port());
    }
    describe_host();

    // Tests and scripts read this line to learn the port (with --port 0).
    std::printf("taskhost listening on http://%s:%d\n", cfg.http.host.c_str(), server->port());
    std::fflush(stdout);
    spdlog::info("serving on http://{}:{} with {} worker(s), database {} (--sync {})", cfg.http.host, server->port(),
                 cfg.executor.workers, store->url(), store->sync());
    server->serve();
    served.mark();
    const auto deadline = served.stop_asked_at() + seconds_duration(cfg.shutdown_timeout_s);

    // ---- stop, in this order -------------------------------------------------
    signals.reset();  // no more reload or stop requests
    watcher.reset();  // no more folder events
    // Running tasks asked to stop; those still running at the deadline
    // recorded as interrupted; queued jobs left pending; every end committed.
    jobs->stop(deadline);
    // A reload still running, or code of a task that would not stop, may
    // never return: then the host leaves now, its store flushed, without
    // unloading what such a thread may still be running.
    // (The reload thread gets a moment even past the deadline: an idle one
    // only has to wake up.)
    const bool reload_stopped =
        reloader->stop(std::max(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
    if (!reload_stopped || jobs->load().stuck > 0)
        leave_with_threads_stuck(*jobs, *store, reload_stopped ? "" : "the reload thread");
    server.reset();    // no request runs any more (open streams and ?wait ended in stop())
    reloader.reset();  // after the server: $reload reaches it through Services
    jobs.reset();
    registry.publish(std::make_shared<const registry::Snapshot>());  // no task holds a generation now
    plugins.reset();   // so every generation is shut down and unloaded here
    executor.reset();  // its task database connections closed
    store.reset();     // pending writes drained, connections closed
    spdlog::info("stopped");
    return 0;
}

}  // namespace taskhost::app
