#include "loop.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

namespace bench {

using Clock = std::chrono::steady_clock;

double LoopResult::percentile_ms(double q) const {
    if (latencies_ns.empty()) return -1;
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(latencies_ns.size())));
    rank = std::clamp<size_t>(rank, 1, latencies_ns.size());
    return static_cast<double>(latencies_ns[rank - 1]) / 1e6;
}

std::string LoopResult::error_summary() const {
    std::string s;
    for (const auto &[kind, n] : error_kinds) {
        if (!s.empty()) s += "; ";
        s += std::to_string(n) + "x " + kind;
    }
    return s;
}

namespace {

struct PerThread {
    std::vector<int64_t> lat;
    std::map<std::string, size_t> kinds;
    size_t ops = 0, errors = 0, http = 0;
    uint64_t reconnects = 0;
};

}  // namespace

LoopResult run_loop(const LoopConfig &config, const OpFn &op) {
    const int n = std::max(1, config.clients);
    // Phase boundaries: the completion step stamps the time every thread
    // then reads, so all clients share one start and one deadline.
    std::atomic<int64_t> phase_time{0};
    auto stamp = [&phase_time]() noexcept { phase_time.store(Clock::now().time_since_epoch().count()); };
    std::barrier sync(n + 1, stamp);
    std::atomic<size_t> claimed{0};
    std::vector<PerThread> per(static_cast<size_t>(n));
    const auto warm = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config.warmup_s));
    const auto span = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(config.seconds));
    auto at = [&] { return Clock::time_point(Clock::duration(phase_time.load())); };

    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            const uint16_t port =
                config.ports.empty() ? config.port : config.ports[static_cast<size_t>(i) % config.ports.size()];
            auto ctx = std::make_unique<ClientCtx>(port, i);
            PerThread &me = per[static_cast<size_t>(i)];
            me.lat.reserve(std::min<size_t>(config.max_ops / static_cast<size_t>(n) + 16, 1u << 20));
            ctx->conn.connect();  // failures show up as errors of the first op
            OpOutcome out;
            auto run_one = [&](bool record) {
                out.ok = true;
                out.error.clear();
                out.latency_ns = -1;
                out.http_requests = 1;
                out.transport_error = false;
                const auto t0 = Clock::now();
                op(*ctx, out);
                const auto t1 = Clock::now();
                ++ctx->iteration;
                if (record) {
                    ++me.ops;
                    me.http += out.http_requests;
                    if (out.ok) {
                        me.lat.push_back(out.latency_ns >= 0
                                             ? out.latency_ns
                                             : std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
                    } else {
                        ++me.errors;
                        ++me.kinds[out.error.empty() ? std::string("error") : out.error];
                    }
                }
                if (out.transport_error) std::this_thread::sleep_for(std::chrono::milliseconds(5));
                return t1;
            };

            sync.arrive_and_wait();  // connected
            const auto warm_end = at() + warm;
            if (config.warmup_s > 0) {
                size_t warm_ops = 0;
                while (Clock::now() < warm_end && warm_ops < config.max_ops) {
                    run_one(false);
                    ++warm_ops;
                }
            }
            sync.arrive_and_wait();  // warmed up: the measured phase starts now
            const auto deadline = at() + span;
            for (;;) {
                if (config.stop && config.stop->load(std::memory_order_relaxed)) break;
                if (claimed.fetch_add(1, std::memory_order_relaxed) >= config.max_ops) break;
                if (run_one(true) >= deadline) break;
            }
            me.reconnects = ctx->conn.reconnects();
            sync.arrive_and_wait();  // measured phase over
        });
    }
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    const auto start = at();
    if (config.on_measure_start) config.on_measure_start();
    sync.arrive_and_wait();
    const auto end = at();
    if (config.on_measure_end) config.on_measure_end();
    for (auto &t : threads) t.join();

    LoopResult r;
    r.seconds = std::chrono::duration<double>(end - start).count();
    size_t total = 0;
    for (auto &p : per) total += p.lat.size();
    r.latencies_ns.reserve(total);
    for (auto &p : per) {
        r.ops += p.ops;
        r.errors += p.errors;
        r.http_requests += p.http;
        r.reconnects += p.reconnects;
        r.latencies_ns.insert(r.latencies_ns.end(), p.lat.begin(), p.lat.end());
        for (auto &[k, v] : p.kinds) r.error_kinds[k] += v;
    }
    std::sort(r.latencies_ns.begin(), r.latencies_ns.end());
    return r;
}

}  // namespace bench
