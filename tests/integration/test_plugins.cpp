// GET /api/v1/plugins, refused plugins, the types fixture (hot reload: test_reload.cpp).
#include "test_util.hpp"

#include <fstream>
#include <regex>
#include <set>

using namespace th_test;

namespace {

json plugin_entry(const json &plugins, const std::string &file) {
    for (const auto &p : plugins)
        if (p.value("file", "") == file && p.value("state", "") != "retired") return p;
    FAIL("no plugin entry for " << file << " in " << plugins.dump());
    return nullptr;
}

std::set<std::string> task_names(httplib::Client &cli) {
    std::set<std::string> out;
    for (const auto &t : get_json(cli, "/api/v1/tasks")) out.insert(t["name"].get<std::string>());
    return out;
}

bool is_sha256_hex(const json &j) {
    static const std::regex re("^[0-9a-f]{64}$");
    return j.is_string() && std::regex_match(j.get<std::string>(), re);
}

// types.so needs demo.so beside it: schedule_child submits greet_user.
ServiceOptions with_types() { return ServiceOptions::examples({"demo.so"}).with_plugin(fixture_plugin("types.so")); }

// The plain C fixtures written against other ABI 1 minors' struct sizes.
ServiceOptions with_layouts() {
    return ServiceOptions::examples({})
        .with_plugin(fixture_plugin("abi_older.so"))
        .with_plugin(fixture_plugin("abi_newer.so"));
}

}  // namespace

TEST_SUITE("plugins") {

TEST_CASE("GET /api/v1/plugins lists every loaded file") {
    Service svc;
    json plugins = get_json(svc.cli(), "/api/v1/plugins");
    REQUIRE(plugins.is_array());
    CHECK(plugins.size() == 4);
    const std::map<std::string, std::set<std::string>> expected = {
        {"demo", {"greet_user", "hello", "greet", "process_data", "failing_task", "safe_task", "slow_task"}},
        {"math", {"add", "multiply", "multiply_numbers"}},
        {"storage", {"store_result", "count_users", "long_task"}},
        {"data", {"process_csv", "extract_data", "transform_data", "load_data"}},
    };
    std::set<int64_t> generations;
    for (const auto &[name, tasks] : expected) {
        json p = plugin_entry(plugins, name + ".so");
        INFO(p.dump());
        CHECK(p["name"] == name);
        CHECK(p["version"] == "1.0.0");
        CHECK(p["file"] == name + ".so");
        CHECK(is_sha256_hex(p["hash"]));
        REQUIRE(p["generation"].is_number_integer());
        generations.insert(p["generation"].get<int64_t>());
        CHECK(is_iso_utc(p["loaded_at"]));
        std::set<std::string> listed;
        for (const auto &t : p["tasks"]) listed.insert(t.get<std::string>());
        CHECK(listed == tasks);
        CHECK(p["state"] == "active");
        CHECK(p["error"].is_null());
    }
    CHECK(generations.size() == 4);  // each load is its own generation
}

TEST_CASE("refused plugins: the host serves the others and says why") {
    ServiceOptions o;
    for (const char *f : {"not_a_plugin.so", "no_entry.so", "wrong_abi.so", "dup_task.so", "bad_name.so",
                          "init_fails.so", "count_mismatch.so", "abi_mixed_sizes.so", "bad_schema.so"})
        o.plugins.push_back(fixture_plugin(f));
    Service svc(o);
    auto &cli = svc.cli();

    // Serving, but a person should look: /health says which files and why.
    json health = get_json(cli, "/health");
    CHECK(health["status"] == "degraded");
    CHECK(health["checks"]["database"]["state"] == "healthy");
    CHECK(health["checks"]["plugins"]["state"] == "degraded");
    for (const char *f : {"not_a_plugin.so", "no_entry.so", "wrong_abi.so", "init_fails.so"})
        CHECK_CONTAINS(health["checks"]["plugins"]["message"].get<std::string>(), std::string(f) + " was refused");
    CHECK(run_task(cli, "greet_user", {{"name", "Alice"}}).artifact["data"]["result"] ==
          json{{"message", "Hello, Alice!"}});
    CHECK(run_task(cli, "add", {{"a", 2}, {"b", 3}}).artifact["data"]["result"] == json{{"result", 5}});
    // demo's hello kept its name; the duplicate did not replace it.
    CHECK(run_task(cli, "hello").artifact["data"]["result"] == json{{"message", "Hello!"}});
    CHECK(get_json(cli, "/api/v1/tasks/hello")["docstring"] == "Simple hello world task.");

    json plugins = get_json(cli, "/api/v1/plugins");
    const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
        {"not_a_plugin.so", {"not a loadable shared library"}},
        {"no_entry.so", {"entry symbol", "taskhost_plugin_v1"}},
        {"wrong_abi.so", {"ABI", "99"}},
        {"dup_task.so", {"duplicate task name 'hello'"}},
        {"bad_name.so", {"invalid task name", "'bad name'"}},
        {"init_fails.so", {"database unavailable"}},
        {"count_mismatch.so",
         {"invalid declaration: task 'count_mismatch': 2 parameter name(s) given for 1 "
          "caller parameter(s)"}},
        {"bad_schema.so",
         {"invalid declaration: task 'bad_schema_task': params_schema_json is not a valid JSON "
          "Schema: "}},
        {"abi_mixed_sizes.so", {"task #1 declares struct_size", "every task of one table must have the same size"}},
    };
    for (const auto &[file, reasons] : expected) {
        json p = plugin_entry(plugins, file);
        INFO(p.dump());
        CHECK(p["state"] == "refused");
        REQUIRE(p["error"].is_string());
        for (const auto &r : reasons) CHECK_CONTAINS(p["error"].get<std::string>(), r);
        CHECK(p["tasks"] == json::array());
        CHECK(is_iso_utc(p["error_at"]));
    }
    for (const char *file : {"demo.so", "math.so", "storage.so", "data.so"})
        CHECK(plugin_entry(plugins, file)["state"] == "active");

    // None of the refused plugins' tasks is offered.
    auto names = task_names(cli);
    for (const char *t :
         {"wrong_abi_task", "init_fails_task", "count_mismatch", "bad name", "mixed_one", "bad_schema_task"})
        CHECK_MESSAGE(names.count(t) == 0, t);
    check_problem(cli.Get("/api/v1/tasks/init_fails_task"), 404);
    check_problem(post_json(cli, "/api/v1/tasks/count_mismatch/$execute", {{"params", {{"a", 1}}}}), 404);
    CHECK(names.size() == 17);

    // One log line per refusal.
    std::string log = svc.host().stderr_text();
    for (const auto &entry : expected) CHECK_CONTAINS(log, "plugin " + entry.first + " refused");
}

TEST_CASE("a missing plugins folder: the host still starts with no tasks") {
    TempDir tmp;
    HostOptions ho;
    ho.plugins_dir = tmp / "does-not-exist";
    ho.work_dir = tmp.path();
    HostProcess host(ho);
    auto cli = host.make_client();
    CHECK(get_json(*cli, "/api/v1/tasks") == json::array());
    CHECK(get_json(*cli, "/api/v1/plugins") == json::array());
    CHECK(get_json(*cli, "/health")["status"] == "healthy");
}

// The probe child (the default) and a load in the host (--probe-timeout-s 0)
// read descriptors the same way.
TEST_CASE("abi: plugins built with smaller or larger descriptors serve their tasks") {
    for (const bool probe : {true, false}) {
        CAPTURE(probe);
        ServiceOptions o = with_layouts();
        if (!probe) o.in_process().flags({"--probe-timeout-s", "0"});
        Service svc(o);
        auto &cli = svc.cli();
        CHECK(task_names(cli) == std::set<std::string>{"newer_echo", "newer_timeout", "older_echo", "older_hello"});
        json plugins = get_json(cli, "/api/v1/plugins");
        CHECK(plugin_entry(plugins, "abi_older.so")["state"] == "active");
        CHECK(plugin_entry(plugins, "abi_newer.so")["state"] == "active");

        // Older: smaller structs, the second task and parameter found all the same.
        json older = get_json(cli, "/api/v1/tasks/older_echo");
        CHECK(older["signature"] == "(a: int, b: string = \"bee\") -> json");
        CHECK(older["tags"] == json::array({"abi", "older"}));
        REQUIRE(older["parameters"].size() == 2);
        CHECK(older["parameters"][1]["name"] == "b");
        CHECK(older["parameters"][1]["default"] == "bee");
        CHECK(older["parameters_schema"]["required"] == json::array({"a"}));
        CHECK(older["timeout_s"].is_null());
        CHECK(run_task(cli, "older_echo", {{"a", 1}, {"b", "x"}}).artifact["data"]["result"] ==
              json{{"a", 1}, {"b", "x"}});
        CHECK(run_task(cli, "older_hello").artifact["data"]["result"] == json{{"hello", "from an older plugin"}});
        // No validate(): the host holds params to the declared schema, in the SDK's words.
        const std::string older_execute = "/api/v1/tasks/older_echo/$execute";
        json p = check_problem(post_json(cli, older_execute, {{"params", {{"anything", 1}}}}), 400);
        CHECK(p["detail"] == "Invalid params for task 'older_echo': unknown parameter 'anything'");
        check_problem(post_json(cli, older_execute, {{"params", {{"a", "x"}}}}), 400,
                      "parameter 'a': expected integer, got string");
        check_problem(post_json(cli, older_execute, {{"params", json::object()}}), 400,
                      "missing required parameter 'a'");
        check_problem(post_json(cli, older_execute, {{"params", {{"a", 1}, {"b", 2}}}}), 400,
                      "parameter 'b': expected string, got integer");
        check_problem(post_json(cli, "/api/v1/tasks/newer_timeout/$execute", {{"params", {{"anything", 1}}}}), 400,
                      "unknown parameter 'anything'");

        // Newer: larger structs, its unknown members ignored.
        json newer = get_json(cli, "/api/v1/tasks/newer_echo");
        REQUIRE(newer["parameters"].size() == 2);
        CHECK(newer["parameters"][0]["name"] == "x");
        CHECK(newer["parameters"][1]["default"] == "why");
        CHECK(run_task(cli, "newer_echo", {{"x", 3}}).artifact["data"]["result"] == json{{"x", 3}});
        // Its own validate() runs: read from the right place.
        check_problem(post_json(cli, "/api/v1/tasks/newer_echo/$execute", {{"params", {{"x", "refuse"}}}}), 400,
                      "parameter 'x': the newer plugin refuses this");
        CHECK(get_json(cli, "/api/v1/tasks/newer_timeout")["timeout_s"] == 7.5);
        auto timed = run_task(cli, "newer_timeout");
        CHECK(timed.artifact["data"]["result"] == json{{"newer", true}});
        CHECK(timed.job["timeout_s"] == 7.5);
    }
}

TEST_CASE("abi: the probe child and a load in the host refuse a declaration for the same reason") {
    std::map<std::string, std::string> reasons[2];
    for (const bool probe : {true, false}) {
        CAPTURE(probe);
        ServiceOptions o = ServiceOptions::examples({});
        for (const char *f : {"abi_mixed_sizes.so", "bad_schema.so", "count_mismatch.so"})
            o.with_plugin(fixture_plugin(f));
        if (!probe) o.in_process().flags({"--probe-timeout-s", "0"});
        Service svc(o);
        for (const auto &p : get_json(svc.cli(), "/api/v1/plugins")) {
            CHECK(p["state"] == "refused");
            reasons[probe][p["file"]] = p["error"];
        }
    }
    CHECK(reasons[0].size() == 3);
    CHECK(reasons[0] == reasons[1]);
    CHECK(reasons[0]["bad_schema.so"] ==
          "invalid declaration: task 'bad_schema_task': params_schema_json is not a valid JSON Schema: JSON value is "
          "not a string.");
    CHECK(reasons[0]["count_mismatch.so"].starts_with("invalid declaration: task 'count_mismatch': "));
}

TEST_CASE("types: echo_types round-trips every parameter type") {
    Service svc(with_types());
    auto &cli = svc.cli();
    json params = {{"b", true},
                   {"i", 9007199254740993LL},  // not representable as a double
                   {"d", 2.5},
                   {"s", "h\u00e9llo \"w\"\n"},
                   {"j", {{"x", json::array({1, {{"y", nullptr}}})}}},
                   {"v", json::array({1, -2, 3})},
                   {"o", "opt"}};
    auto done = run_task(cli, "echo_types", params);
    CHECK(done.artifact["data"]["result"] == params);
    CHECK(done.artifact["data"]["params"] == params);

    json without_o = params;
    without_o.erase("o");
    json expected = without_o;
    expected["o"] = nullptr;
    CHECK(run_task(cli, "echo_types", without_o).artifact["data"]["result"] == expected);
    json null_o = without_o;
    null_o["o"] = nullptr;
    CHECK(run_task(cli, "echo_types", null_o).artifact["data"]["result"] == expected);

    json info = get_json(cli, "/api/v1/tasks/echo_types");
    std::vector<std::string> annotations;
    for (const auto &p : info["parameters"]) annotations.push_back(p["annotation"]);
    CHECK(annotations == std::vector<std::string>{"bool", "int64_t", "double", "std::string", "json",
                                                  "std::vector<int>", "std::optional<std::string>"});
    CHECK(info["parameters"][6]["required"] == false);
    CHECK(info["parameters_schema"]["required"] == json::array({"b", "i", "d", "s", "j", "v"}));
}

TEST_CASE("types: wrong types are refused naming the parameter") {
    Service svc(with_types());
    auto &cli = svc.cli();
    json good = {{"b", true}, {"i", 1}, {"d", 1.0}, {"s", "s"}, {"j", nullptr}, {"v", json::array({1})}};
    auto with = [&](const char *key, json value) {
        json p = good;
        p[key] = std::move(value);
        return post_json(cli, "/api/v1/tasks/echo_types/$execute", {{"params", p}});
    };
    json p = check_problem(with("v", json::array({1, "two", 3})), 400, "'v'");
    CHECK_CONTAINS(p["detail"].get<std::string>(), "[1]");
    check_problem(with("v", "not an array"), 400, "'v'");
    check_problem(with("b", 1), 400, "'b'");
    check_problem(with("s", 5), 400, "'s'");
    check_problem(with("d", "2.5"), 400, "'d'");
    check_problem(with("o", 5), 400, "'o'");
    check_problem(with("i", 1.5), 400, "'i'");
    CHECK(get_json(cli, "/api/v1/jobs") == json::array());
    // The good one is accepted (json parameter takes null).
    CHECK(run_task(cli, "echo_types", good).job["status"] == "completed");
}

TEST_CASE("types: inject_all gets every service and the job id") {
    Service svc(with_types());
    auto &cli = svc.cli();
    auto done = run_task(cli, "inject_all");
    json r = done.artifact["data"]["result"];
    for (const char *k : {"database", "session", "artifacts", "scheduler", "context"}) CHECK_MESSAGE(r[k] == true, k);
    CHECK(r["job_id"] == done.job["id"]);
    // Injected parameters are not caller parameters.
    check_problem(post_json(cli, "/api/v1/tasks/inject_all/$execute", {{"params", {{"database", 1}}}}), 400,
                  "'database'");
    json info = get_json(cli, "/api/v1/tasks/inject_all");
    REQUIRE(info["parameters"].size() == 5);
    for (const auto &p : info["parameters"]) CHECK(p["injected"] == true);
    CHECK(info["parameters_schema"]["properties"] == json::object());
}

TEST_CASE("types: with_default applies defaults") {
    Service svc(with_types());
    auto &cli = svc.cli();
    CHECK(run_task(cli, "with_default").artifact["data"]["result"] == json{{"n", 5}, {"label", "x"}});
    CHECK(run_task(cli, "with_default", {{"n", 7}}).artifact["data"]["result"] == json{{"n", 7}, {"label", "x"}});
    CHECK(run_task(cli, "with_default", {{"label", "y"}}).artifact["data"]["params"] == json{{"label", "y"}});
    json info = get_json(cli, "/api/v1/tasks/with_default");
    CHECK(info["parameters"][0]["default"] == "5");
    CHECK(info["parameters"][1]["default"] == "x");
    CHECK(info["signature"] == "(n: int = 5, label: std::string = \"x\") -> json");
}

TEST_CASE("types: schedule_child submits a job that completes") {
    Service svc(with_types());
    auto &cli = svc.cli();
    auto done = run_task(cli, "schedule_child", {{"name", "Kid"}});
    json r = done.artifact["data"]["result"];
    REQUIRE(is_ulid(r["child_job_id"]));
    json child = wait_job(cli, r["child_job_id"]);
    CHECK(child["task_name"] == "greet_user");
    CHECK(child["status"] == "completed");
    CHECK(get_artifact(cli, child["artifact_id"])["data"]["result"] == json{{"message", "Hello, Kid!"}});
    CHECK(get_json(cli, "/api/v1/jobs").size() == 2);
}

TEST_CASE("types: a child of a task known to be quick is queued and completes") {
    // Once greet_user is known to be quick, a submitter may run it on its own
    // thread; a task's Scheduler must not (it used to be left pending forever).
    Service svc(with_types());
    auto &cli = svc.cli();
    for (int i = 0; i < 3; ++i) run_task(cli, "greet_user");
    auto done = run_task(cli, "schedule_child", {{"name", "Quick"}});
    json r = done.artifact["data"]["result"];
    REQUIRE(is_ulid(r["child_job_id"]));
    json child = wait_job(cli, r["child_job_id"]);
    CHECK(child["status"] == "completed");
}

TEST_CASE("types: a failing task's session is rolled back, a successful one committed") {
    Service svc(with_types());
    auto &cli = svc.cli();
    auto count = [&] { return run_task(cli, "session_count").artifact["data"]["result"]["count"].get<int64_t>(); };
    int64_t before = count();
    std::string id = submit(cli, "session_rollback");
    json job = wait_job(cli, id);
    CHECK(job["status"] == "failed");
    CHECK_CONTAINS(job["error"].get<std::string>(), "failing after an insert");
    CHECK(count() == before);
    CHECK(run_task(cli, "session_commit", {{"note", "kept"}}).artifact["data"]["result"] == json{{"inserted", "kept"}});
    CHECK(count() == before + 1);
}

}  // TEST_SUITE("plugins")
