// Example plugin "demo": the guide's greeting, injection, failure and
// long-running task patterns.
#include <taskhost/sdk.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

using taskhost::json;
using namespace taskhost;

namespace {

json greet_user(std::string name) { return {{"message", "Hello, " + name + "!"}}; }

json hello() { return {{"message", "Hello!"}}; }

json greet(std::string name, std::string greeting) { return {{"message", greeting + ", " + name + "!"}}; }

json process_data(Database &database, Artifacts &artifacts) {
    const std::string inner =
        artifacts.save({{"status", "processed"}, {"records", 42}, {"timestamp", "2025-10-18T12:00:00Z"}});
    return {{"status", "complete"}, {"artifact_id", inner}, {"database_url", database.url()}};
}

json failing_task() { throw std::invalid_argument("Something went wrong"); }

// Stands in for work that can fail: the square root of a decimal number.
double risky_square_root(const std::string &text) {
    double value = 0;
    const char *first = text.data();
    const char *last = first + text.size();
    const auto [end, ec] = std::from_chars(first, last, value);
    if (text.empty() || ec != std::errc() || end != last || !std::isfinite(value))
        throw std::invalid_argument("'" + text + "' is not a finite number");
    if (value < 0) throw std::domain_error("cannot take the square root of a negative number");
    return std::sqrt(value);
}

json safe_task(std::string risky_param) {
    try {
        return {{"status", "success"}, {"result", risky_square_root(risky_param)}};
    } catch (const std::exception &e) {
        // Handled here, so the job succeeds and the caller reads the status.
        return {{"status", "error"}, {"error", e.what()}};
    }
}

json slow_task(Context &context, double seconds) {
    if (!(seconds >= 0)) throw std::invalid_argument("seconds must be >= 0");
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (;;) {
        // Checked every step so a cancel takes effect within ~50 ms.
        if (context.cancelled()) throw Cancelled();
        const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
        if (elapsed >= seconds) break;
        context.progress(elapsed / seconds, "sleeping");
        std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.05, seconds - elapsed)));
    }
    context.progress(1.0, "done");
    return {{"slept", seconds}};
}

}  // namespace

TASKHOST_PLUGIN(
    "demo", "1.0.0",
    task("greet_user", greet_user)
        .doc("Simple task that returns a greeting.")
        .tags({"demo", "simple"})
        .param("name", "World"),
    task("hello", hello).doc("Simple hello world task.").tags({"demo"}),
    task("greet", greet).doc("Greet someone.").tags({"demo"}).param("name", "World").param("greeting", "Hello"),
    task("process_data", process_data).doc("Dependencies are automatically injected.").tags({"demo", "injection"}),
    task("failing_task", failing_task)
        .doc("Task that always fails, to show how errors are captured.")
        .tags({"demo", "testing"}),
    task("safe_task", safe_task).doc("Task with error handling.").tags({"production"}).params("risky_param"),
    task("slow_task", slow_task)
        .doc("Waits for the given number of seconds, reporting progress and honouring cancellation.")
        .tags({"demo", "testing"})
        .params("seconds"));
