// taskhost-bench: closed-loop load driver for taskhost (issues 5 and 16).
//
// Starts its own hosts (fresh temp folder, file databases, --port 0), runs
// the selected scenarios, the job scenarios once per isolation mode (and
// once more against a baseline binary, if given), and prints one table plus
// one JSON line per scenario and mode. It measures; it never decides whether
// a figure is good enough (scripts/bench compares with the targets). The exit
// status is non-zero only when something broke: a host that does not start,
// a seed that fails, or (with --fail-on-errors) requests that did not succeed.
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client.hpp"
#include "host.hpp"
#include "loop.hpp"
#include "seed.hpp"

#ifndef TASKHOST_BENCH_BINARY
#define TASKHOST_BENCH_BINARY "taskhost"
#endif
#ifndef TASKHOST_BENCH_PLUGINS
#define TASKHOST_BENCH_PLUGINS "plugins"
#endif
#ifndef TASKHOST_BENCH_PLUGIN
#define TASKHOST_BENCH_PLUGIN "bench_plugin.so"
#endif
#ifndef TASKHOST_BENCH_CRASH_PLUGIN
#define TASKHOST_BENCH_CRASH_PLUGIN "crash_plugin.so"
#endif

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

// ---- options ---------------------------------------------------------------

struct Options {
    std::string only;
    int clients = 16;
    bool clients_given = false;  // --clients said (retention uses 4 otherwise)
    double seconds = 5;
    double warmup_s = 1;
    size_t max_requests = 5'000'000;
    bool quick = false;
    std::string binary = TASKHOST_BENCH_BINARY;
    std::string plugins = TASKHOST_BENCH_PLUGINS;
    std::string bench_plugin = TASKHOST_BENCH_PLUGIN;
    std::string crash_plugin = TASKHOST_BENCH_CRASH_PLUGIN;
    std::string modes = "in-process,process";
    std::string baseline_binary;
    // Run the job scenarios again with --sync normal (issue 20).
    bool sync_compare = true;
    int crash_samples = 6;
    std::string workdir;
    bool keep = false;
    std::string json_out;
    std::string pid_file;
    bool fail_on_errors = false;
    size_t queue_size = 10'000'000;
    std::vector<std::string> host_args;
    size_t scale_jobs = 1'000'000;
    size_t scale_base = 1'000;
    size_t scale_requests = 20'000;
    size_t retention_jobs = 100'000;
    int plugin_count = 200;
    int reloads = 5;
    int startups = 3;
    bool seed_with_store = false;
    std::string db_url;  // the HTTP scenarios on this database instead of a SQLite file each
    std::string fleet_db;  // the fleet scenario's PostgreSQL database
    int fleet_hosts = 3;   // the fleet scenario runs 1, 2 … this many hosts
};

const std::vector<std::string> kScenarios = {"ceiling", "submit-only", "end-to-end", "one-request", "crash",
                                             "scale",   "retention",   "plugins",    "fleet"};
const std::vector<std::string> kModes = {"in-process", "process"};

// ---- output ----------------------------------------------------------------

double r3(double v) { return std::round(v * 1000) / 1000; }
double r1(double v) { return std::round(v * 10) / 10; }

ojson num_or_null(double v) { return v < 0 ? ojson(nullptr) : ojson(r3(v)); }

struct TableRow {
    std::string name;
    size_t requests = 0;
    double seconds = 0;
    double rps = 0;
    double p50 = -1, p95 = -1, p99 = -1, max = -1;
    size_t errors = 0;
    std::optional<double> fraction;  // of the ceiling
    double host_us = -1;             // host CPU per operation
    double worker_us = -1;           // worker processes' CPU per operation (process isolation)
    std::string note;
};

struct Results {
    std::vector<TableRow> rows;
    std::vector<ojson> lines;
    std::vector<std::string> notes;
    std::vector<std::string> comparisons;  // side-by-side tables of host kinds
    bool broke = false;                    // infrastructure failure
    size_t request_errors = 0;             // failed requests, all scenarios
};

// The median (the mean of the middle two of an even count); -1 if empty.
double median_of(std::vector<double> v) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void log(const std::string &s) { std::cerr << "[bench] " << s << std::endl; }

std::string fmt(double v, int decimals = 3) {
    if (v < 0) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

void print_table(const Results &res, std::ostream &out) {
    char line[512];
    std::snprintf(line, sizeof line, "%-36s %10s %8s %10s %9s %9s %9s %9s %7s %8s %11s %10s", "scenario", "requests",
                  "seconds", "rps", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "ceiling", "host us/op",
                  "wkr us/op");
    out << line << "\n" << std::string(std::strlen(line), '-') << "\n";
    for (const auto &r : res.rows) {
        std::string frac = r.fraction ? fmt(*r.fraction * 100, 1) + "%" : "-";
        std::snprintf(line, sizeof line, "%-36s %10zu %8s %10s %9s %9s %9s %9s %7zu %8s %11s %10s", r.name.c_str(),
                      r.requests, fmt(r.seconds, 2).c_str(), fmt(r.rps, 0).c_str(), fmt(r.p50).c_str(),
                      fmt(r.p95).c_str(), fmt(r.p99).c_str(), fmt(r.max).c_str(), r.errors, frac.c_str(),
                      fmt(r.host_us, 1).c_str(), fmt(r.worker_us, 1).c_str());
        out << line;
        if (!r.note.empty()) out << "  " << r.note;
        out << "\n";
    }
}

TableRow row_of(const std::string &name, const bench::LoopResult &r) {
    TableRow row;
    row.name = name;
    row.requests = r.ops;
    row.seconds = r.seconds;
    row.rps = r.rate();
    row.p50 = r.percentile_ms(0.50);
    row.p95 = r.percentile_ms(0.95);
    row.p99 = r.percentile_ms(0.99);
    row.max = r.max_ms();
    row.errors = r.errors;
    if (r.errors) row.note = r.error_summary();
    return row;
}

ojson line_of(const std::string &scenario, const bench::LoopResult &r) {
    ojson j;
    j["scenario"] = scenario;
    j["requests"] = r.ops;
    j["seconds"] = r3(r.seconds);
    j["rps"] = r1(r.rate());
    j["p50_ms"] = num_or_null(r.percentile_ms(0.50));
    j["p95_ms"] = num_or_null(r.percentile_ms(0.95));
    j["p99_ms"] = num_or_null(r.percentile_ms(0.99));
    j["max_ms"] = num_or_null(r.max_ms());
    j["errors"] = r.errors;
    j["fraction_of_ceiling"] = nullptr;  // filled in once the ceiling is known
    if (r.errors) j["error_kinds"] = r.error_kinds;
    return j;
}

// ---- small HTTP helpers (one-off requests, not measured) -------------------

std::optional<nlohmann::json> get_json(uint16_t port, const std::string &target, int *status = nullptr) {
    bench::Connection c(port);
    bench::Response res;
    std::string err;
    if (!c.get(target, res, &err)) return std::nullopt;
    if (status) *status = res.status;
    try {
        return nlohmann::json::parse(res.body);
    } catch (...) {
        return std::nullopt;
    }
}

// The wall clock, µs since the epoch (the host's job times are on it).
int64_t wall_clock_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "2026-12-04T10:00:00.123456Z": an RFC 3339 date-time for a query parameter.
std::string rfc3339_utc(int64_t us) {
    const auto secs = static_cast<time_t>(us / 1'000'000);
    tm t{};
    ::gmtime_r(&secs, &t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(us % 1'000'000));
    return buf;
}

// Waits until the host has no queued or running job (after a burst of
// submissions); returns the seconds it took, or -1 on timeout.
double wait_idle(uint16_t port, double timeout_s, int64_t *backlog = nullptr) {
    const auto t0 = Clock::now();
    bool first = true;
    for (;;) {
        auto sys = get_json(port, "/api/v1/system");
        if (sys && sys->is_object()) {
            int64_t queued = sys->value("jobs_queued", int64_t{0});
            int64_t running = sys->value("jobs_running", int64_t{0});
            if (first && backlog) *backlog = queued + running;
            first = false;
            if (queued == 0 && running == 0) return std::chrono::duration<double>(Clock::now() - t0).count();
        }
        if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_s) return -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// The store's write counters (/api/v1/system): how well writes are grouped.
struct StoreWrites {
    int64_t commits = 0, writes = 0, checkpoints = 0, writer_checkpoints = 0;
};
StoreWrites store_writes(uint16_t port) {
    StoreWrites w;
    auto sys = get_json(port, "/api/v1/system");
    if (sys && sys->is_object() && sys->contains("store_writes")) {
        const auto &s = (*sys)["store_writes"];
        w.commits = s.value("commits", int64_t{0});
        w.writes = s.value("writes", int64_t{0});
        w.checkpoints = s.value("checkpoints", int64_t{0});
        w.writer_checkpoints = s.value("writer_checkpoints", int64_t{0});
    }
    return w;
}

// ---- PostgreSQL's side of a fleet run ----

// One number from the database (psql, Debian's postgresql-client); -1 if
// it cannot be read.
double pg_number(const std::string &url, const std::string &sql) {
    const std::string cmd = "psql -XAtq '" + url + "' -c \"" + sql + "\" 2>/dev/null";
    FILE *p = ::popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[128] = {};
    const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
    ::pclose(p);
    return got ? std::atof(buf) : -1;
}

// Transactions the database has committed (reads in autocommit included).
double pg_transactions(const std::string &url) {
    return pg_number(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()");
}

// CPU seconds used so far by the PostgreSQL server's processes on this
// machine (every process named postgres): backends, WAL writer, checkpointer.
double postgres_cpu_seconds() {
    double total = 0;
    for (const auto &entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        std::ifstream comm(entry.path() / "comm");
        std::string c;
        if (!std::getline(comm, c) || c != "postgres") continue;
        const auto cpu = bench::process_cpu(static_cast<pid_t>(std::stol(name)));
        if (cpu.own_s > 0) total += cpu.own_s;
    }
    return total;
}

// Mean writes per commit between two readings (warm-up and drain included).
void add_store_figures(ojson &line, const StoreWrites &before, const StoreWrites &after) {
    const int64_t commits = after.commits - before.commits, writes = after.writes - before.writes;
    line["store_commits"] = commits;
    line["store_writes"] = writes;
    line["store_checkpoints"] = after.checkpoints - before.checkpoints;
    line["store_writer_checkpoints"] = after.writer_checkpoints - before.writer_checkpoints;
    line["writes_per_commit"] = commits > 0 ? ojson(r1(static_cast<double>(writes) / commits)) : ojson(nullptr);
}

// The worker processes GET /api/v1/system lists (process isolation), with
// the CPU each has used so far (seconds).
std::map<pid_t, double> worker_cpu(uint16_t port) {
    std::map<pid_t, double> cpu;
    auto sys = get_json(port, "/api/v1/system");
    if (!sys || !sys->is_object() || !sys->contains("worker_processes")) return cpu;
    for (const auto &w : (*sys)["worker_processes"]) {
        if (!w.is_object() || !w.contains("pid") || !w["pid"].is_number_integer()) continue;
        const auto pid = static_cast<pid_t>(w["pid"].get<int64_t>());
        if (double s = bench::process_cpu(pid).own_s; s >= 0) cpu[pid] = s;
    }
    return cpu;
}

// CPU used by the host, by its worker processes and by this driver over the
// measured phase of a loop: per operation it is a steadier figure than the
// rate on a noisy machine.
struct CpuWindow {
    explicit CpuWindow(const bench::HostProcess *h, bool workers = false) : host(h), with_workers(workers) {}
    const bench::HostProcess *host;
    bool with_workers;  // list and sample the host's worker processes too
    double host0 = -1, host1 = -1, self0 = 0, self1 = 0;
    double reaped0 = 0, reaped1 = 0;  // the host's reaped children (workers that exited)
    std::map<pid_t, double> workers0, workers1;

    static double self_seconds() {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        auto s = [](const timeval &t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
        return s(u.ru_utime) + s(u.ru_stime);
    }
    void attach(bench::LoopConfig &c) {
        c.on_measure_start = [this] { begin(); };
        c.on_measure_end = [this] { end(); };
    }
    // The worker list is read outside the host's readings, so the GET that
    // lists them is not charged to the window.
    void begin() {
        if (with_workers) workers0 = worker_cpu(host->port());
        const auto h = bench::process_cpu(host->pid());
        host0 = h.own_s;
        reaped0 = h.reaped_children_s;
        self0 = self_seconds();
    }
    void end() {
        const auto h = bench::process_cpu(host->pid());
        host1 = h.own_s;
        reaped1 = h.reaped_children_s;
        self1 = self_seconds();
        if (with_workers) workers1 = worker_cpu(host->port());
    }
    // Workers' CPU in the window: the growth of each worker alive at the end
    // (from 0 for one started inside the window), plus what workers that
    // exited inside it used after the start (the host's reaped-children time
    // holds their whole life; what they had used before the start is taken
    // off). -1 when not sampled.
    double workers_seconds() const {
        if (!with_workers || host0 < 0 || host1 < 0) return -1;
        double total = std::max(0.0, reaped1 - reaped0);
        for (const auto &[pid, end] : workers1) {
            auto start = workers0.find(pid);
            total += std::max(0.0, end - (start == workers0.end() ? 0.0 : start->second));
        }
        for (const auto &[pid, start] : workers0)
            if (!workers1.count(pid)) total -= start;
        return std::max(0.0, total);
    }
    double host_us(size_t ops) const {
        return ops == 0 || host0 < 0 || host1 < 0 ? -1 : r1((host1 - host0) * 1e6 / static_cast<double>(ops));
    }
    double worker_us(size_t ops) const {
        const double w = workers_seconds();
        return ops == 0 || w < 0 ? -1 : r1(w * 1e6 / static_cast<double>(ops));
    }
    void add_to(ojson &line, size_t ops) const {
        if (host_us(ops) < 0) return;
        line["host_cpu_us_per_op"] = host_us(ops);
        if (with_workers) {
            line["worker_cpu_us_per_op"] = worker_us(ops);
            line["host_and_worker_cpu_us_per_op"] = r1(host_us(ops) + std::max(0.0, worker_us(ops)));
            line["worker_processes"] = workers1.size();
        }
        line["client_cpu_us_per_op"] = r1((self1 - self0) * 1e6 / static_cast<double>(ops));
    }
};

// ---- ops -------------------------------------------------------------------

void fail(bench::OpOutcome &out, std::string what) {
    out.ok = false;
    out.error = std::move(what);
}

// A request either got a response with the expected status, or the outcome
// records why not. False when the op should stop here.
bool expect(bench::ClientCtx &ctx, bench::OpOutcome &out, bool sent, int want, const std::string &err,
            const char *what) {
    if (!sent) {
        fail(out, std::string(what) + ": " + err);
        out.transport_error = true;
        return false;
    }
    if (ctx.res.status != want) {
        fail(out, std::string(what) + ": status " + std::to_string(ctx.res.status));
        return false;
    }
    return true;
}

void op_ping(bench::ClientCtx &ctx, bench::OpOutcome &out) {
    std::string err;
    bool sent = ctx.conn.get("/ping", ctx.res, &err);
    expect(ctx, out, sent, 200, err, "GET /ping");
}

constexpr std::string_view kHelloExecute = "/api/v1/tasks/hello/$execute";

void op_submit(bench::ClientCtx &ctx, bench::OpOutcome &out) {
    std::string err;
    bool sent = ctx.conn.post(kHelloExecute, "{}", ctx.res, &err);
    if (!expect(ctx, out, sent, 202, err, "$execute")) return;
    if (bench::json_string_field(ctx.res.body, "job_id").size() != 26) fail(out, "$execute: no job_id in the 202");
}

// Waits (long-poll) until the job is terminal; the job record ends up in
// ctx.res. False (and the outcome set) if it did not finish in time.
bool wait_terminal(bench::ClientCtx &ctx, bench::OpOutcome &out, std::string_view job_id) {
    ctx.target.assign("/api/v1/jobs/").append(job_id).append("?wait=5");
    for (int attempt = 0; attempt < 6; ++attempt) {
        std::string err;
        bool sent = ctx.conn.get(ctx.target, ctx.res, &err);
        ++out.http_requests;
        if (!expect(ctx, out, sent, 200, err, "GET job?wait")) return false;
        std::string_view status = bench::json_string_field(ctx.res.body, "status");
        if (status == "completed") return true;
        if (status == "failed" || status == "canceled") {
            fail(out, "job ended " + std::string(status));
            return false;
        }
    }
    fail(out, "job not terminal after 30 s");
    return false;
}

void op_end_to_end(bench::ClientCtx &ctx, bench::OpOutcome &out) {
    out.http_requests = 1;
    const bool with_add = ctx.iteration % 2 == 1;
    std::uniform_int_distribution<int> dist(-1'000'000, 1'000'000);
    int a = 0, b = 0;
    std::string body = "{}";
    std::string_view target = kHelloExecute;
    if (with_add) {
        a = dist(ctx.rng);
        b = dist(ctx.rng);
        body = R"({"params":{"a":)" + std::to_string(a) + R"(,"b":)" + std::to_string(b) + "}}";
        target = "/api/v1/tasks/add/$execute";
    }
    const auto t0 = Clock::now();
    std::string err;
    bool sent = ctx.conn.post(target, body, ctx.res, &err);
    if (!expect(ctx, out, sent, 202, err, "$execute")) return;
    std::string job_id(bench::json_string_field(ctx.res.body, "job_id"));
    if (job_id.size() != 26) return fail(out, "$execute: no job_id in the 202");
    if (!wait_terminal(ctx, out, job_id)) return;
    out.latency_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    if (!with_add) return;

    // Not timed: the job's artifact must hold a + b.
    std::string artifact_id(bench::json_string_field(ctx.res.body, "artifact_id"));
    if (artifact_id.size() != 26) return fail(out, "add: the job has no artifact_id");
    ctx.target.assign("/api/v1/artifacts/").append(artifact_id);
    sent = ctx.conn.get(ctx.target, ctx.res, &err);
    ++out.http_requests;
    if (!expect(ctx, out, sent, 200, err, "GET artifact")) return;
    try {
        auto art = nlohmann::json::parse(ctx.res.body);
        const auto &result = art.at("data").at("result").at("result");
        if (result.get<int64_t>() != int64_t{a} + b) fail(out, "add: wrong result in the artifact");
    } catch (const std::exception &) {
        fail(out, "add: artifact without data.result.result");
    }
}

void op_one_request(bench::ClientCtx &ctx, bench::OpOutcome &out) {
    std::string err;
    bool sent = ctx.conn.post("/api/v1/tasks/hello/$execute?wait=5", "{}", ctx.res, &err);
    if (sent && ctx.res.status == 202) return fail(out, "$execute?wait: 202 (job not finished within the wait)");
    if (!expect(ctx, out, sent, 200, err, "$execute?wait")) return;
    if (bench::json_string_field(ctx.res.body, "status") != "completed")
        return fail(out, "$execute?wait: not completed");
    if (bench::json_field_is_null(ctx.res.body, "artifact") || ctx.res.body.find("\"artifact\"") == std::string::npos)
        fail(out, "$execute?wait: no artifact inlined");
}

// ---- the run ---------------------------------------------------------------

class Bench {
public:
    explicit Bench(Options o) : o_(std::move(o)) {}

    int run() {
        std::set<std::string> selected;
        if (o_.only.empty()) {
            selected.insert(kScenarios.begin(), kScenarios.end());
        } else {
            std::stringstream ss(o_.only);
            std::string item;
            while (std::getline(ss, item, ',')) {
                if (item.empty()) continue;
                if (std::find(kScenarios.begin(), kScenarios.end(), item) == kScenarios.end()) {
                    std::cerr << "unknown scenario '" << item << "' (known: ceiling, submit-only, end-to-end, "
                              << "one-request, crash, scale, retention, plugins, fleet)\n";
                    return 2;
                }
                selected.insert(item);
            }
        }
        std::vector<std::string> modes;
        {
            std::stringstream ss(o_.modes);
            std::string item;
            while (std::getline(ss, item, ',')) {
                if (item.empty() || std::find(modes.begin(), modes.end(), item) != modes.end()) continue;
                if (std::find(kModes.begin(), kModes.end(), item) == kModes.end()) {
                    std::cerr << "unknown mode '" << item << "' (known: in-process, process)\n";
                    return 2;
                }
                modes.push_back(item);
            }
            if (modes.empty()) {
                std::cerr << "--modes names no mode\n";
                return 2;
            }
        }
        if (!setup_workdir()) return 2;

        // The first mode runs every selected HTTP scenario (the issue-5
        // figures); each further mode, and the baseline binary, only the job
        // scenarios, each on a fresh host, so the modes compare like for like.
        const bool http_block = selected.count("ceiling") || selected.count("submit-only") ||
                                selected.count("end-to-end") || selected.count("one-request");
        std::set<std::string> job_scenarios;
        for (const char *name : {"end-to-end", "one-request"})
            if (selected.count(name)) job_scenarios.insert(name);
        for (size_t i = 0; i < modes.size(); ++i) {
            const auto &only = i == 0 ? selected : job_scenarios;
            if (i == 0 ? http_block : !job_scenarios.empty())
                run_http_block(only, HostKind{modes[i], modes[i], o_.binary});
            // The baseline in the same mode next to this build's run, so both
            // meet the machine in about the same state.
            if (!o_.baseline_binary.empty() && !job_scenarios.empty())
                run_http_block(job_scenarios, HostKind{baseline_label(modes[i]), modes[i], o_.baseline_binary});
        }
        if (modes.size() > 1 || !o_.baseline_binary.empty()) compare_modes();
        // Issue 20: the first mode again with --sync normal, next to its run
        // with the default (full), for the job scenarios and submit-only.
        if (o_.sync_compare) {
            std::set<std::string> sync_scenarios;
            for (const char *name : {"submit-only", "end-to-end", "one-request"})
                if (selected.count(name)) sync_scenarios.insert(name);
            if (!sync_scenarios.empty()) {
                const std::string label = modes[0] + "-sync-normal";
                run_http_block(sync_scenarios, HostKind{label, modes[0], o_.binary, {"--sync", "normal"}});
                compare("sync full / normal", label, modes[0]);
            }
        }
        if (selected.count("crash")) {
            if (std::find(modes.begin(), modes.end(), "process") != modes.end()) run_crash();
            else if (!o_.only.empty()) log("crash: skipped (it needs the process mode in --modes)");
        }
        if (selected.count("scale")) run_scale();
        if (selected.count("retention")) run_retention(modes[0]);
        if (selected.count("plugins")) run_plugins();
        if (selected.count("fleet")) {
            if (!o_.fleet_db.empty()) run_fleet(modes[0]);
            else if (!o_.only.empty()) log("fleet: skipped (it needs --fleet-db postgresql://…)");
        }

        finish_output();
        cleanup_workdir();
        if (res_.broke) return 2;
        if (o_.fail_on_errors && res_.request_errors > 0) return 1;
        return 0;
    }

private:
    // ---- infrastructure ---------------------------------------------------

    bool setup_workdir() {
        std::error_code ec;
        if (o_.workdir.empty()) {
            const char *tmp = std::getenv("TMPDIR");
            std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/taskhost-bench-XXXXXX";
            if (!::mkdtemp(templ.data())) {
                std::cerr << "cannot create a temp folder: " << std::strerror(errno) << "\n";
                return false;
            }
            workdir_ = templ;
            own_workdir_ = true;
        } else {
            workdir_ = o_.workdir;
            fs::create_directories(workdir_, ec);
            if (ec) {
                std::cerr << "cannot create " << workdir_ << ": " << ec.message() << "\n";
                return false;
            }
        }
        log("work folder " + workdir_.string());
        return true;
    }

    void cleanup_workdir() {
        if (own_workdir_ && !o_.keep) {
            std::error_code ec;
            fs::remove_all(workdir_, ec);
        }
    }

    bench::HostOptions host_options(const std::string &tag, const std::string &plugins, const std::string &db) {
        bench::HostOptions h;
        h.binary = o_.binary;
        h.plugins_dir = plugins;
        h.db = db;
        h.log_path = (workdir_ / ("host-" + tag + ".log")).string();
        h.extra = o_.host_args;
        return h;
    }

    bool start_host(bench::HostProcess &host, const bench::HostOptions &h, const std::string &what) {
        std::string err;
        if (!host.start(h, &err)) {
            log("cannot start the host for " + what + ": " + err);
            res_.broke = true;
            res_.notes.push_back(what + ": the host did not start");
            return false;
        }
        log(what + ": host pid " + std::to_string(host.pid()) + " on port " + std::to_string(host.port()) +
            " (listening after " + fmt(host.startup_ms(), 1) + " ms)");
        return true;
    }

    bench::LoopConfig loop_config(uint16_t port, int clients, double seconds, size_t max_ops, double warmup) const {
        bench::LoopConfig c;
        c.port = port;
        c.clients = clients;
        c.seconds = seconds;
        c.max_ops = max_ops;
        c.warmup_s = warmup;
        return c;
    }

    void add(TableRow row, ojson line, bool ratio_to_ceiling, double rate_for_ratio = -1) {
        res_.request_errors += row.errors;
        pending_.push_back(
            {res_.rows.size(), res_.lines.size(), ratio_to_ceiling, rate_for_ratio >= 0 ? rate_for_ratio : row.rps});
        res_.rows.push_back(std::move(row));
        res_.lines.push_back(std::move(line));
    }

    // A plugin fixture's bytes, to copy under other names; empty (and the
    // run marked broken) when it is not there or not an ELF file.
    std::string read_fixture_image(const std::string &path, const std::string &scenario) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string image = ss.str();
        if (image.size() >= 4 && image.compare(0, 4,
                                               "\x7f"
                                               "ELF") == 0)
            return image;
        log(scenario + ": cannot read the fixture " + path);
        res_.broke = true;
        res_.notes.push_back(scenario + ": fixture " + path + " missing");
        return {};
    }

    // ---- ceiling, submit-only, end-to-end, one-request ---------------------

    // Which host a block of HTTP scenarios runs on.
    struct HostKind {
        std::string label;   // "in-process", "process", "baseline" or "baseline-process": tags its rows and lines
        std::string mode;    // its --isolation
        std::string binary;  // its executable
        std::vector<std::string> extra = {};  // more flags for its host
        bool baseline() const { return label.starts_with("baseline"); }
    };
    // The baseline binary's label in `mode`: "baseline" in process, as before
    // there were modes.
    static std::string baseline_label(const std::string &mode) {
        return mode == "in-process" ? "baseline" : "baseline-" + mode;
    }

    // The job scenarios' figures of one host kind, for the comparisons.
    struct JobFigures {
        double rps = -1, p50 = -1, host_us = -1, worker_us = -1, p99 = -1;
    };
    struct KindFigures {
        std::optional<JobFigures> submit_only, end_to_end, one_request;
    };

    void run_http_block(const std::set<std::string> &selected, const HostKind &kind) {
        bench::HostProcess host;
        auto h = host_options("http-" + kind.label, o_.plugins,
                              o_.db_url.empty() ? (workdir_ / ("http-" + kind.label + ".db")).string() : o_.db_url);
        h.binary = kind.binary;
        h.extra.push_back("--queue-size");
        h.extra.push_back(std::to_string(o_.queue_size));
        // Always said: the default changed (issue 16). A baseline must know
        // the flag (any build since then).
        h.extra.push_back("--isolation");
        h.extra.push_back(kind.mode);
        h.extra.insert(h.extra.end(), kind.extra.begin(), kind.extra.end());
        if (!start_host(host, h, "http scenarios [" + kind.label + "]")) return;
        const uint16_t port = host.port();
        const double drain_timeout = o_.quick ? 60 : 300;
        const bool ceiling = selected.count("ceiling") > 0;
        const bool others =
            selected.count("submit-only") || selected.count("end-to-end") || selected.count("one-request");
        const std::string tag = " [" + kind.label + "]";
        auto mark = [&](ojson &line) {
            line["mode"] = kind.mode;
            if (kind.baseline()) {
                line["build"] = "baseline";
                line["binary"] = kind.binary;
            }
        };
        auto &figures = figures_[kind.label];

        auto run_ceiling = [&](const std::string &label) {
            log("ceiling (" + label + ")" + tag + ": GET /ping, " + std::to_string(o_.clients) + " clients");
            auto config = loop_config(port, o_.clients, o_.seconds, o_.max_requests, o_.warmup_s);
            CpuWindow cpu{&host};
            cpu.attach(config);
            auto r = bench::run_loop(config, op_ping);
            ceilings_.push_back(r.rate());
            auto line = line_of("ceiling", r);
            cpu.add_to(line, r.ops);
            line["run"] = label;
            mark(line);
            auto row = row_of("ceiling (" + label + ")" + tag, r);
            row.host_us = cpu.host_us(r.ops);
            add(std::move(row), std::move(line), true);
        };

        if (ceiling) run_ceiling(others ? "first" : "only");

        // A job scenario: the measured loop, then the drain of what it left
        // running, with the store's write counters over both.
        struct JobRun {
            bench::LoopResult r;
            ojson line;
            int64_t backlog = 0;
            double drain = 0;
            double host_us = -1, worker_us = -1;
        };
        auto run_jobs = [&](const std::string &scenario, auto op) {
            JobRun j;
            auto w0 = store_writes(port);
            auto config = loop_config(port, o_.clients, o_.seconds, o_.max_requests, o_.warmup_s);
            CpuWindow cpu{&host, true};
            cpu.attach(config);
            j.r = bench::run_loop(config, op);
            j.line = line_of(scenario, j.r);
            mark(j.line);
            cpu.add_to(j.line, j.r.ops);
            j.host_us = cpu.host_us(j.r.ops);
            j.worker_us = cpu.worker_us(j.r.ops);
            j.drain = wait_idle(port, drain_timeout, &j.backlog);
            add_store_figures(j.line, w0, store_writes(port));
            return j;
        };

        if (selected.count("submit-only")) {
            log("submit-only" + tag + ": POST hello/$execute, " + std::to_string(o_.clients) + " clients");
            auto [r, line, backlog, drain, host_us, worker_us] = run_jobs("submit-only", op_submit);
            size_t s503 = 0;
            for (auto &[k, v] : r.error_kinds)
                if (k.find("status 503") != std::string::npos) s503 += v;
            line["status_503"] = s503;
            // The workers run what was accepted; how long that takes is the
            // execution throughput without HTTP in the way.
            line["backlog_after"] = backlog;
            line["drain_seconds"] = drain < 0 ? ojson(nullptr) : ojson(r3(drain));
            if (drain < 0) res_.notes.push_back("submit-only: the backlog did not drain in time");
            auto row = row_of("submit-only" + tag, r);
            row.host_us = host_us;
            row.worker_us = worker_us;
            if (s503)
                row.note =
                    std::to_string(s503) + " answered 503 (queue full)" + (row.note.empty() ? "" : "; " + row.note);
            log("submit-only: backlog of " + std::to_string(backlog) + " job(s) drained in " + fmt(drain, 2) + " s");
            figures.submit_only = JobFigures{r.rate(), r.percentile_ms(0.5), host_us, worker_us, r.percentile_ms(0.99)};
            add(std::move(row), std::move(line), true);
        }

        if (selected.count("end-to-end")) {
            log("end-to-end" + tag + ": submit hello/add, wait until terminal, " + std::to_string(o_.clients) +
                " clients");
            auto [r, line, backlog, drain, host_us, worker_us] = run_jobs("end-to-end", op_end_to_end);
            line["unit"] = "jobs";
            line["http_requests"] = r.http_requests;
            line["http_rps"] = r1(r.seconds > 0 ? static_cast<double>(r.http_requests) / r.seconds : 0);
            line["latency"] = "submit to terminal";
            auto row = row_of("end-to-end (jobs)" + tag, r);
            row.host_us = host_us;
            row.worker_us = worker_us;
            figures.end_to_end = JobFigures{r.rate(), r.percentile_ms(0.5), host_us, worker_us, r.percentile_ms(0.99)};
            add(std::move(row), std::move(line), true);
        }

        if (selected.count("one-request")) {
            log("one-request" + tag + ": POST hello/$execute?wait=5, " + std::to_string(o_.clients) + " clients");
            auto [r, line, backlog, drain, host_us, worker_us] = run_jobs("one-request", op_one_request);
            auto row = row_of("one-request" + tag, r);
            row.host_us = host_us;
            row.worker_us = worker_us;
            figures.one_request = JobFigures{r.rate(), r.percentile_ms(0.5), host_us, worker_us, r.percentile_ms(0.99)};
            add(std::move(row), std::move(line), true);
        }

        if (ceiling && others) run_ceiling("last");
        if (!host.running() || ::kill(host.pid(), 0) != 0) {
            res_.broke = true;
            res_.notes.push_back("the host of the http scenarios" + tag + " died");
        }
        host.stop();
    }

    // ---- a fleet: 1, 2 … N hosts on one PostgreSQL ------------------------------

    // Submit-only and end-to-end with the clients spread over the hosts,
    // for each fleet size. Per job: the hosts' CPU (summed), PostgreSQL's
    // CPU (every postgres process on this machine), its transactions and
    // the hosts' commits, from the start of the measured phase until the
    // backlog has drained. On one machine the hosts and the database share
    // the cores: the rates show the cost of coordination, not scaling; the
    // per-job costs are what docs/scaling.md builds on.
    void run_fleet(const std::string &mode) {
        std::ostringstream table;
        char row[256];
        std::snprintf(row, sizeof row, "%-6s %-12s %10s %9s %12s %12s %12s %11s %11s\n", "hosts", "scenario", "jobs/s",
                      "p50 ms", "host us/job", "wkr us/job", "pg us/job", "pg xact/job", "commit/job");
        table << "fleet on PostgreSQL (" << mode << "; clients spread over the hosts; pg = every postgres process "
              << "on this machine, from the measured phase to the drained backlog):\n"
              << row << std::string(std::strlen(row) - 1, '-') << "\n";
        for (int n = 1; n <= o_.fleet_hosts; ++n) {
            std::vector<std::unique_ptr<bench::HostProcess>> hosts;
            std::vector<uint16_t> ports;
            bool started = true;
            for (int i = 1; i <= n && started; ++i) {
                const std::string id = "bench-fleet-" + std::to_string(n) + "-" + std::to_string(i);
                auto h = host_options(id, o_.plugins, o_.fleet_db);
                h.extra.insert(h.extra.end(),
                               {"--queue-size", std::to_string(o_.queue_size), "--isolation", mode, "--host-id", id});
                hosts.push_back(std::make_unique<bench::HostProcess>());
                started = start_host(*hosts.back(), h, "fleet of " + std::to_string(n) + ", host " + std::to_string(i));
                if (started) ports.push_back(hosts.back()->port());
            }
            const std::string tag = " [fleet " + std::to_string(n) + "]";
            for (const auto &[scenario, op] : std::vector<std::pair<std::string, bench::OpFn>>{
                     {"submit-only", op_submit}, {"end-to-end", op_end_to_end}}) {
                if (!started) break;
                log(scenario + tag + ": " + std::to_string(o_.clients) + " clients over " + std::to_string(n) +
                    " host(s)");
                std::vector<CpuWindow> cpu;
                for (const auto &h : hosts) cpu.emplace_back(h.get(), true);
                std::vector<StoreWrites> w0;
                double pg_cpu0 = 0, xact0 = 0;
                auto config = loop_config(ports[0], o_.clients, o_.seconds, o_.max_requests, o_.warmup_s);
                config.ports = ports;
                config.on_measure_start = [&] {
                    for (auto &c : cpu) c.begin();
                    for (auto p : ports) w0.push_back(store_writes(p));
                    pg_cpu0 = postgres_cpu_seconds();
                    xact0 = pg_transactions(o_.fleet_db);
                };
                config.on_measure_end = [&] {
                    for (auto &c : cpu) c.end();
                };
                auto r = bench::run_loop(config, op);
                for (auto p : ports) wait_idle(p, o_.quick ? 60 : 300);
                const double pg_cpu = postgres_cpu_seconds() - pg_cpu0;
                const double xacts = pg_transactions(o_.fleet_db) - xact0;
                int64_t commits = 0;
                for (size_t i = 0; i < ports.size(); ++i) commits += store_writes(ports[i]).commits - w0[i].commits;
                const double ops = static_cast<double>(std::max<size_t>(r.ops, 1));
                double host_us = 0, worker_us = 0;
                for (const auto &c : cpu) {
                    host_us += std::max(0.0, c.host_us(r.ops));
                    worker_us += std::max(0.0, c.worker_us(r.ops));
                }
                auto line = line_of(scenario, r);
                line["mode"] = mode;
                line["fleet_hosts"] = n;
                line["database"] = "postgresql";
                line["host_cpu_us_per_job"] = r1(host_us);
                line["worker_cpu_us_per_job"] = r1(worker_us);
                line["pg_cpu_us_per_job"] = r1(pg_cpu * 1e6 / ops);
                line["pg_transactions_per_job"] = xacts < 0 ? ojson(nullptr) : ojson(r3(xacts / ops));
                line["host_commits_per_job"] = r3(static_cast<double>(commits) / ops);
                auto trow = row_of(scenario + tag, r);
                trow.host_us = r1(host_us);
                trow.worker_us = r1(worker_us);
                add(std::move(trow), line, false);
                std::snprintf(row, sizeof row, "%-6d %-12s %10s %9s %12s %12s %12s %11s %11s\n", n, scenario.c_str(),
                              fmt(r.rate(), 0).c_str(), fmt(r.percentile_ms(0.5)).c_str(), fmt(host_us, 1).c_str(),
                              fmt(worker_us, 1).c_str(), fmt(pg_cpu * 1e6 / ops, 1).c_str(),
                              fmt(xacts < 0 ? -1 : xacts / ops, 2).c_str(),
                              fmt(static_cast<double>(commits) / ops, 3).c_str());
                table << row;
            }
            for (auto &h : hosts) h->stop();
            if (!started) return;
        }
        res_.comparisons.push_back(table.str());
    }

    // ---- isolation modes (and the baseline) side by side -------------------

    // One comparison of the job figures of two host kinds, `b` against `a`:
    // a small table for stdout and a JSON line (`scenario` names it; keys end
    // in each kind's label, and `_ratio` is b / a).
    void compare(const std::string &scenario, const std::string &a, const std::string &b) {
        auto fa = figures_.find(a), fb = figures_.find(b);
        if (fa == figures_.end() || fb == figures_.end()) return;
        auto key_of = [](std::string label) {
            std::replace(label.begin(), label.end(), '-', '_');
            return label;
        };
        ojson j;
        j["scenario"] = scenario;
        j["ratio"] = b + " / " + a;
        std::ostringstream t;
        char line[256];
        std::snprintf(line, sizeof line, "%-34s %12s %12s %10s", scenario.c_str(), a.c_str(), b.c_str(),
                      (b + "/" + a).c_str());
        t << line << "\n" << std::string(std::strlen(line), '-') << "\n";
        auto metric = [&](const std::string &name, const std::string &key, double va, double vb, int decimals) {
            const double ratio = va > 0 && vb >= 0 ? vb / va : -1;
            std::snprintf(line, sizeof line, "%-34s %12s %12s %10s", name.c_str(), fmt(va, decimals).c_str(),
                          fmt(vb, decimals).c_str(), fmt(ratio, 2).c_str());
            t << line << "\n";
            j[key + "_" + key_of(a)] = num_or_null(va);
            j[key + "_" + key_of(b)] = num_or_null(vb);
            j[key + "_ratio"] = num_or_null(ratio);
        };
        auto job = [&](const std::string &name, const std::string &key, const std::optional<JobFigures> &x,
                       const std::optional<JobFigures> &y) {
            if (!x || !y) return;
            auto sum = [](const JobFigures &f) { return f.host_us < 0 ? -1 : f.host_us + std::max(0.0, f.worker_us); };
            metric(name + " rate (/s)", key + "_rps", x->rps, y->rps, 0);
            metric(name + " p50 ms", key + "_p50_ms", x->p50, y->p50, 3);
            if (x->p99 >= 0 && y->p99 >= 0) metric(name + " p99 ms", key + "_p99_ms", x->p99, y->p99, 3);
            metric(name + " host CPU us/job", key + "_host_cpu_us", x->host_us, y->host_us, 1);
            metric(name + " worker CPU us/job", key + "_worker_cpu_us", x->worker_us, y->worker_us, 1);
            metric(name + " host+worker us/job", key + "_cpu_us", sum(*x), sum(*y), 1);
        };
        job("submit-only", "submit_only", fa->second.submit_only, fb->second.submit_only);
        job("end-to-end", "end_to_end", fa->second.end_to_end, fb->second.end_to_end);
        job("one-request", "one_request", fa->second.one_request, fb->second.one_request);
        res_.comparisons.push_back(t.str());
        res_.lines.push_back(std::move(j));
    }

    void compare_modes() {
        compare("isolation", "in-process", "process");
        compare("baseline", "baseline", "in-process");
        compare("baseline process", baseline_label("process"), "process");
    }

    // ---- crash (process isolation) -----------------------------------------

    static int64_t monotonic_ns() {
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    }

    // Pids of the worker processes of `plugin` in `state` ("" for any).
    static std::set<int64_t> worker_pids(const nlohmann::json &system, const std::string &plugin,
                                         const std::string &state = "") {
        std::set<int64_t> pids;
        if (!system.is_object() || !system.contains("worker_processes")) return pids;
        for (const auto &w : system["worker_processes"]) {
            if (!w.is_object() || w.value("plugin", std::string()) != plugin) continue;
            if (!state.empty() && w.value("state", std::string()) != state) continue;
            pids.insert(w.value("pid", int64_t{-1}));
        }
        return pids;
    }

    // Crashes one worker of each of `--crash-samples` copies of the crash
    // fixture (each copy its own plugin and content hash: two crashes of one
    // version would quarantine it, and crashes in a row of one generation
    // delay its replacement). Per crash: the time from the task's stamp just
    // before its segfault to the ?wait response that reports the failure,
    // and to the first GET /api/v1/system (polled every ~1 ms) that lists a
    // new idle worker of that plugin.
    void run_crash() {
        const int samples = o_.quick ? std::min(o_.crash_samples, 2) : o_.crash_samples;
        const fs::path dir = workdir_ / "plugins-crash";
        std::error_code ec;
        fs::remove_all(dir, ec);
        fs::create_directories(dir);
        const std::string image = read_fixture_image(o_.crash_plugin, "crash");
        if (image.empty()) return;
        for (int i = 0; i < samples; ++i) {
            std::ofstream out(dir / ("c" + std::to_string(i) + ".so"), std::ios::binary);
            out.write(image.data(), static_cast<std::streamsize>(image.size()));
            const std::string trailer = "taskhost-bench crash copy " + std::to_string(i) + "\n";
            out.write(trailer.data(), static_cast<std::streamsize>(trailer.size()));
        }

        bench::HostProcess host;
        auto h = host_options("crash", dir.string(), (workdir_ / "crash.db").string());
        h.extra.push_back("--isolation");
        h.extra.push_back("process");
        if (!start_host(host, h, "crash")) return;
        const uint16_t port = host.port();

        std::vector<double> failure_ms, ready_ms, started_ms;
        size_t errors = 0;
        std::map<std::string, size_t> error_kinds;
        auto failed = [&](const std::string &why) {
            ++errors;
            ++error_kinds[why];
            log("crash: " + why);
        };
        for (int i = 0; i < samples; ++i) {
            const std::string plugin = "c" + std::to_string(i);
            bench::Connection conn(port);
            bench::Response res;
            // A first job starts the plugin's params checker and one worker,
            // which then waits idle for the crashing job.
            if (!conn.post("/api/v1/tasks/" + plugin + "_ok/$execute?wait=5", "{}", res) || res.status != 200 ||
                bench::json_string_field(res.body, "status") != "completed") {
                failed("the warm-up job of " + plugin + " did not complete (status " + std::to_string(res.status) +
                       ")");
                continue;
            }
            auto before = get_json(port, "/api/v1/system");
            const std::set<int64_t> known = before ? worker_pids(*before, plugin) : std::set<int64_t>{};

            std::atomic<bool> stop{false};
            // When a new worker of the plugin was first listed in any state
            // (its process exists: the host is starting it), and as idle.
            std::atomic<int64_t> started_at{-1}, ready_at{-1};
            std::thread poller([&] {
                bench::Connection c(port);
                bench::Response r;
                const int64_t give_up = monotonic_ns() + 10'000'000'000;
                while (!stop.load() && monotonic_ns() < give_up) {
                    if (c.get("/api/v1/system", r) && r.status == 200) {
                        // The response's arrival: an upper bound of when the
                        // new worker got there (by up to one poll).
                        const int64_t seen = monotonic_ns();
                        try {
                            const auto system = nlohmann::json::parse(r.body);
                            auto is_new = [&](int64_t pid) { return !known.count(pid); };
                            const auto any = worker_pids(system, plugin);
                            if (started_at.load() < 0 && std::any_of(any.begin(), any.end(), is_new)) started_at = seen;
                            const auto idle = worker_pids(system, plugin, "idle");
                            if (std::any_of(idle.begin(), idle.end(), is_new)) {
                                ready_at = seen;
                                return;
                            }
                        } catch (const std::exception &) {
                        }
                    }
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
            });
            const fs::path stamp = workdir_ / ("crash-stamp-" + std::to_string(i));
            fs::remove(stamp, ec);
            const std::string body = nlohmann::json{{"params", {{"stamp_file", stamp.string()}}}}.dump();
            const bool sent = conn.post("/api/v1/tasks/" + plugin + "_crash/$execute?wait=5", body, res);
            const int64_t answered = monotonic_ns();
            const bool crashed = sent && res.status == 200 &&
                                 bench::json_string_field(res.body, "status") == "failed" &&
                                 res.body.find("WorkerCrashed") != std::string::npos;
            if (!crashed) stop = true;
            poller.join();

            int64_t stamped = -1, crashed_pid = -1;
            {
                std::ifstream in(stamp);
                in >> stamped >> crashed_pid;
            }
            if (!crashed) {
                failed("the crash job of " + plugin + " did not fail with WorkerCrashed (status " +
                       std::to_string(res.status) + ")");
                continue;
            }
            if (stamped <= 0 || !known.count(crashed_pid)) {
                failed("no stamp from a known worker of " + plugin);
                continue;
            }
            failure_ms.push_back(static_cast<double>(answered - stamped) / 1e6);
            if (ready_at.load() < 0) {
                failed("no replacement worker of " + plugin + " idle within 10 s");
                continue;
            }
            ready_ms.push_back(static_cast<double>(ready_at.load() - stamped) / 1e6);
            started_ms.push_back(static_cast<double>(started_at.load() - stamped) / 1e6);
        }
        if (!host.running() || ::kill(host.pid(), 0) != 0) {
            res_.broke = true;
            res_.notes.push_back("crash: the host died");
        }
        host.stop();

        auto add_row = [&](const std::string &name, const std::vector<double> &v, const std::string &note) {
            TableRow row;
            row.name = name;
            row.requests = v.size();
            row.p50 = median_of(v);
            row.max = v.empty() ? -1 : *std::max_element(v.begin(), v.end());
            row.note = note;
            res_.rows.push_back(std::move(row));
        };
        add_row("crash -> failure seen [process]", failure_ms, "ms, p50 column is the median; by the ?wait client");
        add_row("crash -> worker ready [process]", ready_ms,
                "ms, p50 column is the median; new idle worker in /system (first listed, starting: median " +
                    fmt(median_of(started_ms), 1) + " ms)");
        res_.rows.back().errors = errors;
        res_.request_errors += errors;

        auto all = [](const std::vector<double> &v) {
            ojson a = ojson::array();
            for (double x : v) a.push_back(r3(x));
            return a;
        };
        ojson j;
        j["scenario"] = "crash";
        j["mode"] = "process";
        j["samples"] = samples;
        j["failure_visible_ms_median"] = num_or_null(median_of(failure_ms));
        j["failure_visible_ms_max"] =
            num_or_null(failure_ms.empty() ? -1 : *std::max_element(failure_ms.begin(), failure_ms.end()));
        j["failure_visible_ms_all"] = all(failure_ms);
        j["replacement_ready_ms_median"] = num_or_null(median_of(ready_ms));
        j["replacement_ready_ms_max"] =
            num_or_null(ready_ms.empty() ? -1 : *std::max_element(ready_ms.begin(), ready_ms.end()));
        j["replacement_ready_ms_all"] = all(ready_ms);
        // Crash to the replacement's process first listed (it is starting):
        // what of the ready time is waiting to start it, not starting it.
        j["replacement_listed_ms_median"] = num_or_null(median_of(started_ms));
        j["replacement_listed_ms_all"] = all(started_ms);
        j["errors"] = errors;
        if (errors) j["error_kinds"] = error_kinds;
        res_.lines.push_back(std::move(j));
    }

    // ---- scale --------------------------------------------------------------

    struct ScaleFigures {
        size_t jobs = 0;
        double seed_s = 0;
        std::string seed_method;
        double startup_ms = 0;
        bench::MemoryFigures mem_warm, mem_end;
        int db_connections = -1;
        bench::HostProcess::Mappings db_maps;
        bench::LoopResult get, list;
        size_t max_offset = 0;
    };

    std::optional<ScaleFigures> scale_at(size_t jobs) {
        ScaleFigures f;
        f.jobs = jobs;
        const std::string label = std::to_string(jobs);
        const std::string db = (workdir_ / ("scale-" + label + ".db")).string();
        log("scale: seeding " + label + " completed jobs (with artifacts) into " + db);
        auto seeded = bench::seed_completed_jobs(db, jobs, 32, o_.seed_with_store, [&](size_t d) {
            log("scale: " + std::to_string(d) + " / " + label + " seeded");
        });
        if (!seeded.error.empty()) {
            log("scale: seeding failed: " + seeded.error);
            res_.broke = true;
            res_.notes.push_back("scale: seeding " + label + " jobs failed: " + seeded.error);
            return std::nullopt;
        }
        f.seed_s = seeded.seconds;
        f.seed_method = seeded.method;
        if (!seeded.note.empty()) log("scale: " + seeded.note);
        log("scale: seeded " + label + " jobs in " + fmt(seeded.seconds, 1) + " s (" +
            fmt(static_cast<double>(jobs) / seeded.seconds, 0) + " jobs/s, " + seeded.method + ")");
        const auto &ids = seeded.job_ids;

        bench::HostProcess host;
        if (!start_host(host, host_options("scale-" + label, o_.plugins, db), "scale " + label)) return std::nullopt;
        f.startup_ms = host.startup_ms();
        const uint16_t port = host.port();

        auto get_op = [&ids](bench::ClientCtx &ctx, bench::OpOutcome &out) {
            const std::string &id = ids[ctx.rng() % ids.size()];
            ctx.target.assign("/api/v1/jobs/").append(id);
            std::string err;
            bool sent = ctx.conn.get(ctx.target, ctx.res, &err);
            if (!expect(ctx, out, sent, 200, err, "GET job")) return;
            if (bench::json_string_field(ctx.res.body, "id") != id) fail(out, "GET job: wrong record");
        };
        f.max_offset = std::min<size_t>(10'000, jobs > 100 ? jobs - 100 : 0);
        const size_t max_offset = f.max_offset;
        auto list_op = [max_offset](bench::ClientCtx &ctx, bench::OpOutcome &out) {
            const size_t offset = max_offset ? ctx.rng() % (max_offset + 1) : 0;
            ctx.target.assign("/api/v1/jobs?limit=100&offset=").append(std::to_string(offset));
            std::string err;
            bool sent = ctx.conn.get(ctx.target, ctx.res, &err);
            if (!expect(ctx, out, sent, 200, err, "GET jobs")) return;
            if (ctx.res.body.empty() || ctx.res.body.front() != '[') fail(out, "GET jobs: not a JSON array");
        };

        // Warm-up: the read paths, then some real jobs through the write path.
        // Warm-up, bounded in count and time: real jobs through the write
        // path first, then as many random reads and pages as the measurement
        // makes, so the RSS below is the state the measured reads run in
        // (a write that grows the file makes SQLite remap its mmap window,
        // which drops file-backed pages: reads last, then the RSS).
        const size_t n_get = o_.scale_requests;
        const size_t n_list = std::max<size_t>(100, o_.scale_requests / 20);
        const double warm = o_.quick ? 0.3 : std::max(1.0, o_.warmup_s * 2);
        bench::run_loop(loop_config(port, 4, warm, 5'000, 0), op_end_to_end);
        wait_idle(port, 60);
        bench::run_loop(loop_config(port, 4, std::max(warm, o_.seconds), n_get, 0), get_op);
        bench::run_loop(loop_config(port, 2, warm, n_list, 0), list_op);
        f.mem_warm = host.memory();

        // Latency: one client, so queueing does not blur what a request costs.
        f.get = bench::run_loop(loop_config(port, 1, o_.seconds, n_get, 0), get_op);
        f.list = bench::run_loop(loop_config(port, 1, o_.seconds, n_list, 0), list_op);
        f.mem_end = host.memory();
        f.db_connections = host.open_fds_to(db);
        f.db_maps = host.mappings_of(db);
        host.stop();
        if (!o_.keep) {
            std::error_code ec;
            for (const char *suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix, ec);
        }
        return f;
    }

    void run_scale() {
        const size_t small = o_.quick ? std::min<size_t>(o_.scale_base, 1'000) : o_.scale_base;
        const size_t large = o_.quick ? std::min<size_t>(o_.scale_jobs, 10'000) : o_.scale_jobs;
        auto a = scale_at(small);
        if (!a) return;
        auto b = scale_at(large);
        if (!b) return;
        auto ratio = [](double x, double y) { return (x > 0 && y >= 0) ? r3(y / x) : -1.0; };
        auto add_rows = [&](const ScaleFigures &f) {
            const std::string n = f.jobs >= 1'000'000 && f.jobs % 1'000'000 == 0
                                      ? std::to_string(f.jobs / 1'000'000) + "M"
                                  : f.jobs >= 1'000 && f.jobs % 1'000 == 0 ? std::to_string(f.jobs / 1'000) + "k"
                                                                           : std::to_string(f.jobs);
            auto g = row_of("scale GET job @" + n, f.get);
            auto l = row_of("scale GET jobs page @" + n, f.list);
            l.note = "offset 0.." + std::to_string(f.max_offset) + (l.note.empty() ? "" : "; " + l.note);
            res_.request_errors += g.errors + l.errors;
            res_.rows.push_back(std::move(g));
            res_.rows.push_back(std::move(l));
        };
        add_rows(*a);
        add_rows(*b);

        ojson j;
        j["scenario"] = "scale";
        j["jobs_small"] = a->jobs;
        j["jobs_large"] = b->jobs;
        j["rss_kb_small"] = a->mem_warm.vm_rss_kb;
        j["rss_kb_large"] = b->mem_warm.vm_rss_kb;
        j["rss_ratio"] = ratio(static_cast<double>(a->mem_warm.vm_rss_kb), static_cast<double>(b->mem_warm.vm_rss_kb));
        j["rss_anon_kb_small"] = a->mem_warm.rss_anon_kb;
        j["rss_anon_kb_large"] = b->mem_warm.rss_anon_kb;
        j["rss_anon_ratio"] =
            ratio(static_cast<double>(a->mem_warm.rss_anon_kb), static_cast<double>(b->mem_warm.rss_anon_kb));
        j["rss_file_kb_small"] = a->mem_warm.rss_file_kb;
        j["rss_file_kb_large"] = b->mem_warm.rss_file_kb;
        j["rss_end_kb_small"] = a->mem_end.vm_rss_kb;
        j["rss_end_kb_large"] = b->mem_end.vm_rss_kb;
        j["rss_end_ratio"] =
            ratio(static_cast<double>(a->mem_end.vm_rss_kb), static_cast<double>(b->mem_end.vm_rss_kb));
        j["rss_end_anon_kb_small"] = a->mem_end.rss_anon_kb;
        j["rss_end_anon_kb_large"] = b->mem_end.rss_anon_kb;
        j["rss_end_file_kb_small"] = a->mem_end.rss_file_kb;
        j["rss_end_file_kb_large"] = b->mem_end.rss_file_kb;
        j["db_connections_small"] = a->db_connections;
        j["db_connections_large"] = b->db_connections;
        j["db_mmaps_large"] = b->db_maps.count;
        j["db_mmap_rss_kb_large"] = b->db_maps.rss_kb;
        j["threads_large"] = b->mem_end.threads;
        j["get_requests_small"] = a->get.ops;
        j["get_requests_large"] = b->get.ops;
        j["get_p50_ms_small"] = num_or_null(a->get.percentile_ms(0.5));
        j["get_p50_ms_large"] = num_or_null(b->get.percentile_ms(0.5));
        j["get_p99_ms_small"] = num_or_null(a->get.percentile_ms(0.99));
        j["get_p99_ms_large"] = num_or_null(b->get.percentile_ms(0.99));
        j["get_p50_ratio"] = ratio(a->get.percentile_ms(0.5), b->get.percentile_ms(0.5));
        j["get_p99_ratio"] = ratio(a->get.percentile_ms(0.99), b->get.percentile_ms(0.99));
        j["list_requests_small"] = a->list.ops;
        j["list_requests_large"] = b->list.ops;
        j["list_max_offset_small"] = a->max_offset;
        j["list_max_offset_large"] = b->max_offset;
        j["list_p50_ms_small"] = num_or_null(a->list.percentile_ms(0.5));
        j["list_p50_ms_large"] = num_or_null(b->list.percentile_ms(0.5));
        j["list_p99_ms_small"] = num_or_null(a->list.percentile_ms(0.99));
        j["list_p99_ms_large"] = num_or_null(b->list.percentile_ms(0.99));
        j["list_p50_ratio"] = ratio(a->list.percentile_ms(0.5), b->list.percentile_ms(0.5));
        j["list_p99_ratio"] = ratio(a->list.percentile_ms(0.99), b->list.percentile_ms(0.99));
        j["startup_ms_small"] = r1(a->startup_ms);
        j["startup_ms_large"] = r1(b->startup_ms);
        j["seed_seconds_large"] = r1(b->seed_s);
        j["seed_method"] = b->seed_method;
        j["errors"] = a->get.errors + a->list.errors + b->get.errors + b->list.errors;
        res_.lines.push_back(j);

        std::ostringstream note;
        note << "scale: RSS " << a->mem_warm.vm_rss_kb / 1024 << " MB @" << a->jobs << " vs "
             << b->mem_warm.vm_rss_kb / 1024 << " MB @" << b->jobs << " (x" << fmt(j["rss_ratio"].get<double>(), 2)
             << "; anon x" << fmt(j["rss_anon_ratio"].get<double>(), 2) << ", file-backed "
             << b->mem_warm.rss_file_kb / 1024 << " MB @" << b->jobs << "); after the measured reads "
             << a->mem_end.vm_rss_kb / 1024 << " MB vs " << b->mem_end.vm_rss_kb / 1024 << " MB (anon "
             << b->mem_end.rss_anon_kb / 1024 << " MB, file-backed " << b->mem_end.rss_file_kb / 1024 << " MB, "
             << b->db_connections << " open handles on the db file, " << b->db_maps.count
             << " mmap windows on it holding " << b->db_maps.rss_kb / 1024 << " MB); GET job p50 x"
             << fmt(j["get_p50_ratio"].get<double>(), 2) << ", p99 x" << fmt(j["get_p99_ratio"].get<double>(), 2)
             << "; GET jobs page p50 x" << fmt(j["list_p50_ratio"].get<double>(), 2) << "; start-up "
             << fmt(a->startup_ms, 0) << " ms vs " << fmt(b->startup_ms, 0) << " ms";
        res_.notes.push_back(note.str());
    }

    // ---- retention: deleting old jobs under submit load ---------------------

    // The answer to one DELETE /api/v1/jobs?finished_before=...
    struct PurgeAnswer {
        bool sent = false;
        int status = 0;
        std::string body, error;
        double seconds = -1;
        int64_t deleted = -1, artifacts_deleted = -1;
    };

    // Seeds --retention-jobs finished jobs with their result artifacts and
    // starts a host on them (--retain-finished 0: the background thread leaves
    // them alone). Baseline: a few clients `$execute?wait=5` hello for
    // --seconds. Purge: the same load, measured for exactly as long as one
    // more connection's DELETE takes. The cutoff is taken after the seeding
    // and before the host starts: every seeded job finished before it and no
    // submitted one, so the DELETE must report exactly the seeded count (with
    // "now" it would also take the jobs the load finished, a count that
    // cannot be checked).
    void run_retention(const std::string &mode) {
        const size_t jobs = o_.quick ? std::min<size_t>(o_.retention_jobs, 10'000) : o_.retention_jobs;
        const int clients = o_.clients_given ? o_.clients : 4;
        const std::string label = std::to_string(jobs);
        const std::string db = (workdir_ / "retention.db").string();
        log("retention: seeding " + label + " completed jobs (with artifacts) into " + db);
        auto seeded = bench::seed_completed_jobs(db, jobs, 32, o_.seed_with_store, [&](size_t d) {
            log("retention: " + std::to_string(d) + " / " + label + " seeded");
        });
        if (!seeded.error.empty()) {
            log("retention: seeding failed: " + seeded.error);
            res_.broke = true;
            res_.notes.push_back("retention: seeding " + label + " jobs failed: " + seeded.error);
            return;
        }
        if (!seeded.note.empty()) log("retention: " + seeded.note);
        log("retention: seeded " + label + " jobs in " + fmt(seeded.seconds, 1) + " s (" + seeded.method + ")");
        const std::string cutoff = rfc3339_utc(wall_clock_us());

        bench::HostProcess host;
        auto h = host_options("retention", o_.plugins, db);
        h.extra.insert(h.extra.end(), {"--isolation", mode, "--retain-finished", "0"});
        if (!start_host(host, h, "retention [" + mode + "]")) return;
        const uint16_t port = host.port();
        const bool process = mode == "process";

        log("retention: baseline, POST hello/$execute?wait=5, " + std::to_string(clients) + " clients");
        auto config = loop_config(port, clients, o_.seconds, o_.max_requests, o_.warmup_s);
        CpuWindow base_cpu{&host, process};
        base_cpu.attach(config);
        const auto base = bench::run_loop(config, op_one_request);

        log("retention: DELETE /api/v1/jobs?finished_before=" + cutoff + " under the same load");
        PurgeAnswer purge;
        std::atomic<bool> purged{false};
        bench::Connection deleter_conn(port, 600);
        deleter_conn.connect();
        std::thread deleter;
        // Bounded by the DELETE alone (the time and count limits are only
        // a backstop).
        auto pconfig = loop_config(port, clients, 3600, 1'000'000'000, o_.warmup_s);
        pconfig.stop = &purged;
        CpuWindow purge_cpu{&host, process};
        pconfig.on_measure_start = [&] {
            purge_cpu.begin();
            deleter = std::thread([&] {
                purge = send_purge(deleter_conn, cutoff);
                purged = true;
            });
        };
        pconfig.on_measure_end = [&] { purge_cpu.end(); };
        const auto during = bench::run_loop(pconfig, op_one_request);
        if (deleter.joinable()) deleter.join();

        // What must hold: the answer names every seeded job and artifact,
        // and seeded jobs are gone.
        std::vector<std::string> problems;
        if (!purge.sent) problems.push_back("the DELETE failed: " + purge.error);
        else if (purge.status != 200)
            problems.push_back("the DELETE answered " + std::to_string(purge.status) + ": " + purge.body);
        else if (purge.deleted != static_cast<int64_t>(jobs) || purge.artifacts_deleted != static_cast<int64_t>(jobs))
            problems.push_back("the DELETE deleted " + std::to_string(purge.deleted) + " job(s) and " +
                               std::to_string(purge.artifacts_deleted) + " artifact(s), not " + label);
        else if (const auto left = seeded_jobs_left(port, seeded.job_ids); !left.empty()) problems.push_back(left);
        if (!host.running() || ::kill(host.pid(), 0) != 0) {
            res_.broke = true;
            problems.push_back("the host died");
        }
        host.stop();
        if (!o_.keep) {
            std::error_code ec;
            for (const char *suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix, ec);
        }
        add_retention_figures(mode, jobs, clients, seeded, cutoff, base, base_cpu, during, purge_cpu, purge, problems);
    }

    static PurgeAnswer send_purge(bench::Connection &conn, const std::string &cutoff) {
        PurgeAnswer a;
        bench::Response res;
        const auto t0 = Clock::now();
        a.sent = conn.request("DELETE", "/api/v1/jobs?finished_before=" + cutoff, {}, res, &a.error);
        a.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (!a.sent) return a;
        a.status = res.status;
        a.body = res.body;
        try {
            const auto body = nlohmann::json::parse(res.body);
            a.deleted = body.value("deleted", int64_t{-1});
            a.artifacts_deleted = body.value("artifacts_deleted", int64_t{-1});
        } catch (const std::exception &) {
        }
        return a;
    }

    // Empty if the first, middle and last seeded jobs are gone (404), else what is wrong.
    static std::string seeded_jobs_left(uint16_t port, const std::vector<std::string> &ids) {
        if (ids.empty()) return {};
        for (size_t i : {size_t{0}, ids.size() / 2, ids.size() - 1}) {
            int status = 0;
            get_json(port, "/api/v1/jobs/" + ids[i], &status);
            if (status != 404) return "seeded job " + ids[i] + " still answers " + std::to_string(status);
        }
        return {};
    }

    void add_retention_figures(const std::string &mode, size_t jobs, int clients, const bench::SeedResult &seeded,
                               const std::string &cutoff, const bench::LoopResult &base, const CpuWindow &base_cpu,
                               const bench::LoopResult &during, const CpuWindow &purge_cpu, const PurgeAnswer &purge,
                               const std::vector<std::string> &problems) {
        const double rate =
            purge.seconds > 0 && purge.deleted >= 0 ? static_cast<double>(purge.deleted) / purge.seconds : -1;
        auto b = row_of("retention baseline", base);
        b.host_us = base_cpu.host_us(base.ops);
        b.worker_us = base_cpu.worker_us(base.ops);
        b.note = "$execute?wait=5, " + std::to_string(clients) + " clients, " + std::to_string(jobs) + " old jobs, " +
                 mode + (b.note.empty() ? "" : "; " + b.note);
        auto d = row_of("retention during purge", during);
        d.host_us = purge_cpu.host_us(during.ops);
        d.worker_us = purge_cpu.worker_us(during.ops);
        d.errors += problems.size();
        std::string note = "DELETE " + fmt(purge.seconds, 2) + " s, " + std::to_string(purge.deleted) + " deleted";
        for (const auto &p : problems) note += "; " + p;
        d.note = note + (d.note.empty() ? "" : "; " + d.note);
        res_.request_errors += b.errors + d.errors;
        res_.rows.push_back(std::move(b));
        res_.rows.push_back(std::move(d));

        auto ratio = [](double x, double y) { return x > 0 && y >= 0 ? r3(y / x) : -1.0; };
        ojson j;
        j["scenario"] = "retention";
        j["mode"] = mode;
        j["jobs"] = jobs;
        j["clients"] = clients;
        j["seed_seconds"] = r1(seeded.seconds);
        j["seed_method"] = seeded.method;
        j["finished_before"] = cutoff;
        j["delete_status"] = purge.status;
        j["delete_seconds"] = num_or_null(purge.seconds);
        j["deleted"] = purge.deleted;
        j["artifacts_deleted"] = purge.artifacts_deleted;
        j["deleted_per_s"] = rate < 0 ? ojson(nullptr) : ojson(r1(rate));
        auto phase = [&](const std::string &key, const bench::LoopResult &r, const CpuWindow &cpu) {
            j[key + "_requests"] = r.ops;
            j[key + "_seconds"] = r3(r.seconds);
            j[key + "_rps"] = r1(r.rate());
            j[key + "_p50_ms"] = num_or_null(r.percentile_ms(0.50));
            j[key + "_p95_ms"] = num_or_null(r.percentile_ms(0.95));
            j[key + "_p99_ms"] = num_or_null(r.percentile_ms(0.99));
            j[key + "_max_ms"] = num_or_null(r.max_ms());
            j[key + "_errors"] = r.errors;
            j[key + "_host_cpu_us_per_op"] = num_or_null(cpu.host_us(r.ops));
            if (r.errors) j[key + "_error_kinds"] = r.error_kinds;
        };
        phase("baseline", base, base_cpu);
        phase("purge", during, purge_cpu);
        j["p50_ratio"] = num_or_null(ratio(base.percentile_ms(0.5), during.percentile_ms(0.5)));
        j["p99_ratio"] = num_or_null(ratio(base.percentile_ms(0.99), during.percentile_ms(0.99)));
        j["rps_ratio"] = num_or_null(ratio(base.rate(), during.rate()));
        j["errors"] = base.errors + during.errors + problems.size();
        if (!problems.empty()) j["problems"] = problems;
        res_.lines.push_back(j);

        res_.notes.push_back("retention: deleted " + std::to_string(purge.deleted) + " jobs in " +
                             fmt(purge.seconds, 2) + " s (" + fmt(rate, 0) + " jobs/s); submit p50 " +
                             fmt(base.percentile_ms(0.5)) + " -> " + fmt(during.percentile_ms(0.5)) + " ms, p99 " +
                             fmt(base.percentile_ms(0.99)) + " -> " + fmt(during.percentile_ms(0.99)) + " ms");
        for (const auto &p : problems) res_.notes.push_back("retention: " + p);
    }

    // ---- plugins ------------------------------------------------------------

    void run_plugins() {
        const int count = o_.quick ? std::min(o_.plugin_count, 20) : o_.plugin_count;
        const int reloads = o_.quick ? std::min(o_.reloads, 2) : o_.reloads;
        const int startups = o_.quick ? 1 : std::max(1, o_.startups);
        const fs::path dir = workdir_ / "plugins-bench";
        std::error_code ec;
        fs::remove_all(dir, ec);
        fs::create_directories(dir);
        const std::string image = read_fixture_image(o_.bench_plugin, "plugins");
        if (image.empty()) return;
        auto file_name = [](int i) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "p%03d.so", i);
            return std::string(buf);
        };
        for (int i = 0; i < count; ++i) {
            std::ofstream out(dir / file_name(i), std::ios::binary);
            out.write(image.data(), static_cast<std::streamsize>(image.size()));
        }
        log("plugins: " + std::to_string(count) + " copies of " + o_.bench_plugin + " in " + dir.string());

        // Start-up: spawn → listening line, with every plugin loaded first.
        std::vector<double> startup;
        bench::HostProcess host;
        for (int s = 0; s < startups; ++s) {
            if (host.running()) host.stop();
            const std::string db = (workdir_ / ("plugins-" + std::to_string(s) + ".db")).string();
            if (!start_host(host, host_options("plugins", dir.string(), db), "plugins start-up")) return;
            startup.push_back(host.startup_ms());
        }
        const uint16_t port = host.port();

        size_t tasks_seen = 0;
        if (auto tasks = get_json(port, "/api/v1/tasks"); tasks && tasks->is_array()) tasks_seen = tasks->size();
        size_t loaded = 0, refused = 0;
        if (auto plugins = get_json(port, "/api/v1/plugins")) {
            const nlohmann::json list =
                plugins->is_array() ? *plugins : plugins->value("plugins", nlohmann::json::array());
            for (const auto &p : list) {
                if (!p.is_object()) continue;
                const std::string state = p.value("state", std::string());
                if (state == "refused") ++refused;
                else if (state == "active" || state == "loaded") ++loaded;
            }
        }
        if (refused > 0) {
            res_.notes.push_back("plugins: " + std::to_string(refused) + " plugin(s) refused");
            res_.request_errors += refused;
        }
        const size_t expected_tasks = static_cast<size_t>(count) * 10;
        if (tasks_seen < expected_tasks) {
            res_.notes.push_back("plugins: only " + std::to_string(tasks_seen) + " of " +
                                 std::to_string(expected_tasks) + " tasks listed (see the host log in " +
                                 workdir_.string() + ")");
            res_.request_errors += 1;
        }

        // GET /api/v1/tasks: the whole list, one client.
        auto list_op = [](bench::ClientCtx &ctx, bench::OpOutcome &out) {
            std::string err;
            bool sent = ctx.conn.get("/api/v1/tasks", ctx.res, &err);
            expect(ctx, out, sent, 200, err, "GET tasks");
        };
        auto tasks_r = bench::run_loop(loop_config(port, 1, o_.seconds, o_.quick ? 50 : 500, 0), list_op);
        const size_t tasks_bytes = [&] {
            bench::Connection c(port);
            bench::Response r;
            return c.get("/api/v1/tasks", r) ? r.body.size() : 0;
        }();

        // Reload: nothing changed (the scan alone), then one changed file.
        auto reload = [&](double &wall_ms, double &duration_ms, nlohmann::json &report) {
            bench::Connection c(port, 120);
            bench::Response r;
            const auto t0 = Clock::now();
            bool ok = c.post("/api/v1/plugins/$reload", "", r);
            wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            if (!ok || r.status != 200) return false;
            try {
                report = nlohmann::json::parse(r.body);
                duration_ms = report.value("duration_ms", -1.0);
            } catch (...) {
                return false;
            }
            return true;
        };
        std::vector<double> same_wall, same_dur, wall, dur;
        size_t reload_errors = 0;
        for (int i = 0; i < reloads; ++i) {
            double w = 0, d = 0;
            nlohmann::json rep;
            if (!reload(w, d, rep)) ++reload_errors;
            same_wall.push_back(w);
            same_dur.push_back(d);
        }
        for (int i = 0; i < reloads; ++i) {
            const std::string name = file_name((i * 37 + 17) % count);
            const fs::path target = dir / name;
            const fs::path tmp = dir / (".tmp-" + name);
            {
                std::ofstream out(tmp, std::ios::binary);
                out.write(image.data(), static_cast<std::streamsize>(image.size()));
                const std::string trailer = "taskhost-bench reload " + std::to_string(i) + "\n";
                out.write(trailer.data(), static_cast<std::streamsize>(trailer.size()));
            }
            fs::rename(tmp, target, ec);
            double w = 0, d = 0;
            nlohmann::json rep;
            bool ok = reload(w, d, rep);
            const auto replaced = rep.is_object() ? rep.value("replaced", nlohmann::json::array()) : nlohmann::json();
            if (!ok || !replaced.is_array() || replaced.size() != 1) {
                ++reload_errors;
                log("plugins: reload after changing " + name + " did not replace exactly one plugin: " + rep.dump());
            }
            wall.push_back(w);
            dur.push_back(d);
        }
        size_t tasks_after = 0;
        if (auto tasks = get_json(port, "/api/v1/tasks"); tasks && tasks->is_array()) tasks_after = tasks->size();
        if (tasks_after != tasks_seen) ++reload_errors;
        host.stop();

        auto median = [](std::vector<double> v) {
            if (v.empty()) return -1.0;
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        auto maxv = [](const std::vector<double> &v) {
            return v.empty() ? -1.0 : *std::max_element(v.begin(), v.end());
        };

        TableRow s;
        s.name = "plugins start-up";
        s.requests = startup.size();
        s.p50 = median(startup);
        s.max = maxv(startup);
        s.note = std::to_string(count) + " plugins, " + std::to_string(tasks_seen) + " tasks; ms to the listening line";
        res_.rows.push_back(s);
        auto t = row_of("plugins GET tasks", tasks_r);
        t.note = std::to_string(tasks_bytes / 1024) + " KiB per response";
        res_.request_errors += t.errors + reload_errors;
        res_.rows.push_back(t);
        TableRow rl;
        rl.name = "plugins reload (1 changed)";
        rl.requests = wall.size();
        rl.p50 = median(wall);
        rl.max = maxv(wall);
        rl.errors = reload_errors;
        rl.note = "wall ms; duration_ms median " + fmt(median(dur), 1) + ", unchanged-folder reload " +
                  fmt(median(same_wall), 1) + " ms";
        res_.rows.push_back(rl);

        ojson j;
        j["scenario"] = "plugins";
        j["plugins"] = count;
        j["plugins_loaded"] = loaded;
        j["plugins_refused"] = refused;
        j["tasks"] = tasks_seen;
        j["startup_ms"] = r1(median(startup));
        j["startup_ms_all"] = startup;
        for (auto &v : j["startup_ms_all"]) v = r1(v.get<double>());
        j["tasks_requests"] = tasks_r.ops;
        j["tasks_bytes"] = tasks_bytes;
        j["tasks_p50_ms"] = num_or_null(tasks_r.percentile_ms(0.5));
        j["tasks_p99_ms"] = num_or_null(tasks_r.percentile_ms(0.99));
        j["reloads"] = wall.size();
        j["reload_duration_ms"] = r3(median(dur));
        j["reload_duration_ms_max"] = r3(maxv(dur));
        j["reload_wall_ms"] = r3(median(wall));
        j["reload_wall_ms_max"] = r3(maxv(wall));
        j["reload_unchanged_duration_ms"] = r3(median(same_dur));
        j["reload_unchanged_wall_ms"] = r3(median(same_wall));
        j["errors"] = tasks_r.errors + reload_errors;
        res_.lines.push_back(j);
    }

    // ---- output -------------------------------------------------------------

    void finish_output() {
        double best = -1, mean = -1;
        if (!ceilings_.empty()) {
            best = *std::max_element(ceilings_.begin(), ceilings_.end());
            double sum = 0;
            for (double c : ceilings_) sum += c;
            mean = sum / static_cast<double>(ceilings_.size());
        }
        for (const auto &p : pending_) {
            if (!p.ratio || best <= 0) continue;
            const double f = p.rate / best;
            res_.rows[p.row].fraction = f;
            res_.lines[p.line]["fraction_of_ceiling"] = r3(f);
        }
        if (best > 0) {
            ojson c;
            c["scenario"] = "ceiling-used";
            c["rps"] = r1(best);
            c["which"] = ceilings_.size() > 1 ? "best of first and last run" : "single run";
            c["runs_rps"] = ceilings_;
            for (auto &v : c["runs_rps"]) v = r1(v.get<double>());
            c["mean_rps"] = r1(mean);
            res_.lines.push_back(c);
        }

        std::ostream &out = std::cout;
        out << "\n";
        print_table(res_, out);
        if (best > 0)
            out << "\nceiling used for the ratios: " << fmt(best, 0) << " req/s ("
                << (ceilings_.size() > 1 ? "best of the first and last ceiling runs; mean " + fmt(mean, 0)
                                         : std::string("single run"))
                << "); end-to-end is jobs/s against it (each job takes 2 requests or more)\n";
        for (const auto &n : res_.notes) out << n << "\n";
        for (const auto &c : res_.comparisons) out << "\n" << c;
        out << "\n";
        std::ofstream json_file;
        if (!o_.json_out.empty()) json_file.open(o_.json_out, std::ios::app);
        for (const auto &l : res_.lines) {
            out << l.dump() << "\n";
            if (json_file) json_file << l.dump() << "\n";
        }
        out.flush();
    }

    struct Pending {
        size_t row, line;
        bool ratio;
        double rate;
    };

    Options o_;
    fs::path workdir_;
    bool own_workdir_ = false;
    Results res_;
    std::vector<double> ceilings_;
    std::vector<Pending> pending_;
    std::map<std::string, KindFigures> figures_;  // by host kind label
};

extern "C" void on_signal(int sig) {
    bench::terminate_all_hosts();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    CLI::App app{
        "taskhost-bench: closed-loop load driver for taskhost (prints a table and one JSON line per scenario)"};
    app.add_option("--only", o.only,
                   "Scenarios to run, comma-separated: ceiling, submit-only, end-to-end, "
                   "one-request, crash, scale, retention, plugins, fleet (default: all; fleet with --fleet-db)");
    auto *clients =
        app.add_option("--clients", o.clients, "Keep-alive clients, one thread each (retention: 4 unless given)")
            ->check(CLI::Range(1, 4096))
            ->capture_default_str();
    auto *seconds = app.add_option("--seconds", o.seconds, "Measured seconds per scenario")
                        ->check(CLI::Range(0.1, 3600.0))
                        ->capture_default_str();
    app.add_option("--warmup", o.warmup_s, "Warm-up seconds before each measured run")->capture_default_str();
    app.add_option("--max-requests", o.max_requests, "Most measured requests per scenario")->capture_default_str();
    app.add_flag("--quick", o.quick, "Small counts and short runs (smoke test)");
    app.add_option("--binary", o.binary, "taskhost executable")->capture_default_str();
    app.add_option("--plugins", o.plugins, "Folder of the example plugins (hello, add)")->capture_default_str();
    app.add_option("--db-url", o.db_url,
                   "Run the HTTP scenarios on this database (postgresql://…) instead of a fresh SQLite file each");
    app.add_option("--fleet-db", o.fleet_db,
                   "The fleet scenario's PostgreSQL database (postgresql://…): 1, 2 … --fleet-hosts hosts on it");
    app.add_option("--fleet-hosts", o.fleet_hosts, "Most hosts in the fleet scenario")
        ->check(CLI::Range(1, 16))
        ->capture_default_str();
    app.add_option("--bench-plugin", o.bench_plugin, "The bench_plugin.so fixture")->capture_default_str();
    app.add_option("--crash-plugin", o.crash_plugin, "The crash_plugin.so fixture")->capture_default_str();
    app.add_option("--modes", o.modes,
                   "Isolation modes, comma-separated: in-process, process. The first runs every selected HTTP "
                   "scenario; each further one end-to-end and one-request on a fresh host")
        ->capture_default_str();
    app.add_flag("!--no-sync-compare", o.sync_compare,
                 "Do not run submit-only, end-to-end and one-request again with --sync normal next to the "
                 "default (full)");
    app.add_option("--baseline-binary", o.baseline_binary,
                   "Also run end-to-end and one-request against this taskhost binary, e.g. an older build, in "
                   "each of --modes, and compare it with --binary")
        ->check(CLI::ExistingFile);
    app.add_option("--crash-samples", o.crash_samples, "Worker crashes timed by the crash scenario")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    app.add_option("--workdir", o.workdir,
                   "Folder for databases, logs and plugin copies (default: a fresh temp folder)");
    app.add_flag("--keep", o.keep, "Keep the work folder and databases");
    app.add_option("--json-out", o.json_out, "Also append the JSON lines to this file");
    app.add_option("--pid-file", o.pid_file, "Append the pid of every host started to this file");
    app.add_flag("--fail-on-errors", o.fail_on_errors, "Exit 1 if any request failed (smoke test)");
    app.add_option("--queue-size", o.queue_size, "--queue-size of the host for the http scenarios")
        ->capture_default_str();
    app.add_option("--host-arg", o.host_args, "Extra flag for every host started (repeatable)")
        ->allow_extra_args(false);
    app.add_option("--scale-jobs", o.scale_jobs, "Jobs in the large database of the scale scenario")
        ->capture_default_str();
    app.add_option("--scale-base", o.scale_base, "Jobs in the small database of the scale scenario")
        ->capture_default_str();
    app.add_option("--scale-requests", o.scale_requests, "Most single-job GETs per database (pages: 1/20 of it)")
        ->capture_default_str();
    app.add_option("--retention-jobs", o.retention_jobs,
                   "Old finished jobs the retention scenario seeds and deletes under submit load")
        ->check(CLI::Range(size_t{1}, size_t{100'000'000}))
        ->capture_default_str();
    app.add_flag("--seed-with-store", o.seed_with_store,
                 "Seed the scale and retention databases through the store API instead of bulk row inserts "
                 "(slower)");
    app.add_option("--plugin-count", o.plugin_count, "Copies of the fixture plugin")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    app.add_option("--reloads", o.reloads, "Reloads measured (each after one changed file)")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    app.add_option("--startups", o.startups, "Host start-ups measured with all plugins")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    o.clients_given = clients->count() > 0;
    if (o.quick) {
        if (seconds->count() == 0) o.seconds = 1;
        o.warmup_s = std::min(o.warmup_s, 0.2);
        o.clients = std::min(o.clients, 4);
        o.max_requests = std::min<size_t>(o.max_requests, 3'000);
        o.scale_requests = std::min<size_t>(o.scale_requests, 1'000);
    }
    if (!o.pid_file.empty()) bench::set_pid_file(o.pid_file);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);
    ::signal(SIGPIPE, SIG_IGN);
    return Bench(o).run();
}
