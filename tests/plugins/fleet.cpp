// Fixture "fleet": a task that records each of its runs in the database by
// its own hand, so that a fleet test counts runs where the task ran, not
// only in the host's rows. The test creates the table (fleet_runs).
#include <taskhost/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

using taskhost::json;
using namespace taskhost;

namespace {

json record_run(Database &database, Context &context, double seconds) {
    database.exec("INSERT INTO fleet_runs (job_id) VALUES ($1)", json::array({context.job_id()}));
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
        context.throw_if_cancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {{"job_id", context.job_id()}};
}

// Waits, and may run twice: declared retry-safe.
json sleep_safe(Context &context, double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
        context.throw_if_cancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {{"job_id", context.job_id()}};
}

}  // namespace

TASKHOST_PLUGIN("fleet", "1.0.0",
                task("record_run", record_run)
                    .doc("Records its run in fleet_runs, then waits `seconds`.")
                    .tags({"testing"})
                    .param("seconds", 0.0),
                task("sleep_safe", sleep_safe)
                    .doc("Waits `seconds`; retry-safe: a job of it whose host is lost runs again.")
                    .tags({"testing"})
                    .param("seconds", 0.0)
                    .retry_safe());
