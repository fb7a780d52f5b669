// taskhost-bench: the closed-loop runner (N clients, one thread and one
// keep-alive connection each, bounded by a count and by a time limit) and
// the statistics it reports.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "client.hpp"

namespace bench {

struct ClientCtx {
    explicit ClientCtx(uint16_t port, int index)
        : conn(port), rng(0x5eed + static_cast<uint64_t>(index) * 7919), id(index) {}
    Connection conn;
    std::mt19937_64 rng;
    int id;
    uint64_t iteration = 0;  // ops started by this client (warm-up included)
    Response res;            // reused by every request of this client
    std::string target;      // scratch for building request targets
};

struct OpOutcome {
    bool ok = true;
    std::string error;        // kind of failure, when !ok
    int64_t latency_ns = -1;  // set by the op when it measures something narrower than the whole call
    uint32_t http_requests = 1;
    bool transport_error = false;  // the connection failed (the runner backs off briefly)
};

// One operation of one client. Called in a loop; must be thread-safe with
// respect to other clients (each has its own ClientCtx).
using OpFn = std::function<void(ClientCtx &, OpOutcome &)>;

struct LoopConfig {
    uint16_t port = 0;
    // Several hosts (a fleet): client i talks to ports[i % size] instead.
    std::vector<uint16_t> ports;
    int clients = 16;
    double warmup_s = 1;
    double seconds = 5;
    size_t max_ops = 5'000'000;  // measured ops, all clients together
    // Once set, the measured phase ends early: each client stops after the
    // op under way (to measure for exactly as long as something else runs).
    const std::atomic<bool> *stop = nullptr;
    // Called on the runner's own thread as the measured phase starts and
    // as it ends (to read CPU counters over exactly that window).
    std::function<void()> on_measure_start, on_measure_end;
};

struct LoopResult {
    size_t ops = 0;  // measured ops that completed (ok or not)
    size_t errors = 0;
    size_t http_requests = 0;
    double seconds = 0;
    std::vector<int64_t> latencies_ns;  // of successful ops, sorted
    std::map<std::string, size_t> error_kinds;
    uint64_t reconnects = 0;

    double rate() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
    // Nearest-rank percentile in milliseconds (q in 0..1); -1 if no sample.
    double percentile_ms(double q) const;
    double max_ms() const { return latencies_ns.empty() ? -1 : static_cast<double>(latencies_ns.back()) / 1e6; }
    std::string error_summary() const;
};

LoopResult run_loop(const LoopConfig &config, const OpFn &op);

}  // namespace bench
