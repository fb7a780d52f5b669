// Fixture plugin "types": one task per SDK feature the tests check (every
// parameter type, every injected service, defaults, scheduling, sessions).
#include <taskhost/sdk.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using taskhost::json;
using namespace taskhost;

namespace {

// Written by session_commit/session_rollback, read by session_count.
void init(Database &database) {
    database.exec("CREATE TABLE IF NOT EXISTS types_session_probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)");
}

json echo_types(bool b, std::int64_t i, double d, std::string s, json j, std::vector<int> v,
                std::optional<std::string> o) {
    return {{"b", b}, {"i", i}, {"d", d}, {"s", s}, {"j", j}, {"v", v}, {"o", o ? json(*o) : json(nullptr)}};
}

json inject_all(Database &, Session &, Artifacts &, Scheduler &, Context &context) {
    return {{"database", true},  {"session", true}, {"artifacts", true},
            {"scheduler", true}, {"context", true}, {"job_id", context.job_id()}};
}

json with_default(int n, std::string label) { return {{"n", n}, {"label", label}}; }

json schedule_child(Scheduler &scheduler, std::string name) {
    return {{"child_job_id", scheduler.submit("greet_user", {{"name", name}})}};
}

json session_commit(Session &session, std::string note) {
    session.exec("INSERT INTO types_session_probe (note) VALUES (?)", json::array({note}));
    return {{"inserted", note}};
}

json session_rollback(Session &session) {
    session.exec("INSERT INTO types_session_probe (note) VALUES (?)", json::array({"must be rolled back"}));
    throw std::runtime_error("failing after an insert: the session must roll it back");
}

json session_count(Database &database) {
    const json rows = database.query("SELECT COUNT(*) AS n FROM types_session_probe");
    return {{"count", rows.at(0).at("n").get<std::int64_t>()}};
}

}  // namespace

TASKHOST_PLUGIN_WITH_INIT(
    "types", "1.0.0", init,
    task("echo_types", echo_types)
        .doc("Returns every parameter as received, one of each supported kind.")
        .tags({"types"})
        .params("b", "i", "d", "s", "j", "v", "o"),
    task("inject_all", inject_all)
        .doc("Takes every injectable service and reports that it got them.")
        .tags({"types", "injection"}),
    task("with_default", with_default)
        .doc("Returns its two parameters, both of which have defaults.")
        .tags({"types"})
        .param("n", 5)
        .param("label", "x"),
    task("schedule_child", schedule_child)
        .doc("Submits greet_user as a child job and returns its id.")
        .tags({"types", "scheduler"})
        .params("name"),
    task("session_commit", session_commit)
        .doc("Inserts a row inside the session, which commits when the task returns.")
        .tags({"types", "session"})
        .param("note", "committed"),
    task("session_rollback", session_rollback)
        .doc("Inserts a row inside the session and then fails, so the insert is rolled back.")
        .tags({"types", "session"}),
    task("session_count", session_count).doc("Counts the rows the session tasks wrote.").tags({"types", "session"}));
