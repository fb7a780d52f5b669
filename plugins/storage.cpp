// Example plugin "storage": tasks using the artifact store and the database,
// and a batch task storing its progress as artifacts.
#include <taskhost/sdk.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

using taskhost::json;
using namespace taskhost;

namespace {

// Runs at load: the table count_users reads, seeded once. SQL that SQLite
// and PostgreSQL both take. Names are the key, so two generations (or two
// hosts of a fleet) loading at once cannot both insert them.
void init(Database &database) {
    database.exec("CREATE TABLE IF NOT EXISTS example_users (name TEXT PRIMARY KEY)");
    database.exec(
        "INSERT INTO example_users (name) "
        "SELECT name FROM (SELECT 'Alice' AS name UNION ALL SELECT 'Bob' UNION ALL SELECT 'Carol') AS seed "
        "WHERE NOT EXISTS (SELECT 1 FROM example_users) ON CONFLICT DO NOTHING");
}

json store_result(Artifacts &artifacts, json data) { return {{"artifact_id", artifacts.save(data)}}; }

json count_users(Database &database) {
    const json rows = database.query("SELECT COUNT(*) AS user_count FROM example_users");
    return {{"user_count", rows.at(0).at("user_count").get<std::int64_t>()}};
}

json long_task(Artifacts &artifacts, Context &context, int steps) {
    if (steps < 0) throw std::invalid_argument("steps must be >= 0");
    json results = json::array();
    for (int i = 0; i < steps; ++i) {
        context.throw_if_cancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // stands in for real work
        const std::int64_t step_result = std::int64_t{i} * i;
        artifacts.save({{"step", i}, {"total", steps}, {"result", step_result}});
        results.push_back(step_result);
        context.progress(static_cast<double>(i + 1) / steps,
                         "step " + std::to_string(i + 1) + " of " + std::to_string(steps));
    }
    return {{"status", "complete"}, {"steps_completed", steps}, {"results", results}};
}

}  // namespace

TASKHOST_PLUGIN_WITH_INIT(
    "storage", "1.0.0", init,
    task("store_result", store_result).doc("Store result in artifact.").tags({"storage"}).params("data"),
    task("count_users", count_users).doc("Count users in database.").tags({"database", "reporting"}),
    task("long_task", long_task)
        .doc("Long-running task with progress tracking.")
        .tags({"processing", "batch"})
        .param("steps", 10));
