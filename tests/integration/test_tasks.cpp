// GET /api/v1/tasks, GET /api/v1/tasks/{name}, POST /api/v1/tasks/{name}/$execute
#include "test_util.hpp"

#include <algorithm>

using namespace th_test;

namespace {

std::vector<std::string> names_of(const json &tasks) {
    std::vector<std::string> out;
    for (const auto &t : tasks) out.push_back(t.at("name").get<std::string>());
    return out;
}

const std::vector<std::string> kExampleTasks = {
    "add",       "count_users",  "extract_data",  "failing_task",     "greet",       "greet_user",   "hello",
    "load_data", "long_task",    "multiply",      "multiply_numbers", "process_csv", "process_data", "safe_task",
    "slow_task", "store_result", "transform_data"};

json find_task(const json &tasks, const std::string &name) {
    for (const auto &t : tasks)
        if (t.at("name") == name) return t;
    FAIL("task " << name << " not listed");
    return nullptr;
}

const json kGreetUserInfo = {
    {"name", "greet_user"},
    {"docstring", "Simple task that returns a greeting."},
    {"signature", "(name: std::string = \"World\") -> json"},
    {"parameters", json::array({{{"name", "name"},
                                 {"annotation", "std::string"},
                                 {"default", "World"},
                                 {"required", false},
                                 {"injected", false}}})},
    {"tags", json::array({"demo", "simple"})},
    {"parameters_schema",
     {{"type", "object"},
      {"properties", {{"name", {{"type", "string"}, {"default", "World"}}}}},
      {"required", json::array()},
      {"additionalProperties", false}}},
};

void check_task_info_shape(const json &t) {
    INFO(t.dump());
    REQUIRE(t.is_object());
    CHECK(t["name"].is_string());
    CHECK((t["docstring"].is_string() || t["docstring"].is_null()));
    CHECK(t["signature"].is_string());
    REQUIRE(t["parameters"].is_array());
    for (const auto &p : t["parameters"]) {
        CHECK(p["name"].is_string());
        CHECK((p["annotation"].is_string() || p["annotation"].is_null()));
        CHECK((p["default"].is_string() || p["default"].is_null()));
        CHECK(p["required"].is_boolean());
        CHECK(p["injected"].is_boolean());
    }
    REQUIRE(t["tags"].is_array());
    for (const auto &tag : t["tags"]) CHECK(tag.is_string());
    CHECK(t["parameters_schema"].is_object());
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("list tasks: every example task, sorted by name, with full TaskInfo") {
    Service svc;
    json tasks = get_json(svc.cli(), "/api/v1/tasks");
    REQUIRE(tasks.is_array());
    auto names = names_of(tasks);
    CHECK(std::is_sorted(names.begin(), names.end()));
    CHECK(names == kExampleTasks);
    for (const auto &t : tasks) check_task_info_shape(t);

    // greet_user exactly as the SDK describes `json greet_user(std::string name)`
    // with .param("name", "World").
    json greet = find_task(tasks, "greet_user");
    for (const auto &item : kGreetUserInfo.items())
        CHECK_MESSAGE(greet[item.key()] == item.value(), item.key() << ": " << greet[item.key()].dump());

    json add = find_task(tasks, "add");
    CHECK(add["docstring"] == "Add two numbers.");
    CHECK(add["signature"] == "(a: int, b: int) -> json");
    CHECK(add["tags"] == json::array({"math"}));
    REQUIRE(add["parameters"].size() == 2);
    for (int i = 0; i < 2; ++i) {
        const json &p = add["parameters"][i];
        CHECK(p["name"] == (i == 0 ? "a" : "b"));
        CHECK(p["annotation"] == "int");
        CHECK(p["default"].is_null());
        CHECK(p["required"] == true);
        CHECK(p["injected"] == false);
    }
    CHECK(add["parameters_schema"]["type"] == "object");
    CHECK(add["parameters_schema"]["required"] == json::array({"a", "b"}));
    CHECK(add["parameters_schema"]["properties"]["a"]["type"] == "integer");
    CHECK(add["parameters_schema"]["additionalProperties"] == false);

    // Injected services are listed, flagged, and never asked of the caller.
    json process = find_task(tasks, "process_data");
    REQUIRE(process["parameters"].size() == 2);
    CHECK(process["parameters"][0]["name"] == "database");
    CHECK(process["parameters"][0]["annotation"] == "Database");
    CHECK(process["parameters"][1]["name"] == "artifacts");
    CHECK(process["parameters"][1]["annotation"] == "Artifacts");
    for (const auto &p : process["parameters"]) {
        CHECK(p["injected"] == true);
        CHECK(p["required"] == false);
        CHECK(p["default"].is_null());
    }
    CHECK(process["parameters_schema"]["properties"] == json::object());
    CHECK(process["parameters_schema"]["required"] == json::array());
    CHECK(process["tags"] == json::array({"demo", "injection"}));

    // A default that is not a string is shown as its JSON text.
    json long_task = find_task(tasks, "long_task");
    json steps;
    for (const auto &p : long_task["parameters"])
        if (p["name"] == "steps") steps = p;
    REQUIRE(steps.is_object());
    CHECK(steps["default"] == "10");
    CHECK(steps["required"] == false);
}

TEST_CASE("list tasks: ?tags= filter (AND, trimmed, exact)") {
    Service svc;
    auto &cli = svc.cli();
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=demo,simple")) == std::vector<std::string>{"greet_user"});
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=math")) ==
          std::vector<std::string>{"add", "multiply", "multiply_numbers"});
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=")) == kExampleTasks);
    CHECK(get_json(cli, "/api/v1/tasks?tags=demo,") == json::array());
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=%20demo%20,%20simple%20")) ==
          std::vector<std::string>{"greet_user"});
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=data,etl")) ==
          std::vector<std::string>{"extract_data", "load_data", "transform_data"});
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=etl,extract")) == std::vector<std::string>{"extract_data"});
    CHECK(get_json(cli, "/api/v1/tasks?tags=nonexistent") == json::array());
    CHECK(get_json(cli, "/api/v1/tasks?tags=Demo") == json::array());  // case-sensitive
    // Given twice, the last one counts, as in the original.
    CHECK(names_of(get_json(cli, "/api/v1/tasks?tags=math&tags=demo,simple")) ==
          std::vector<std::string>{"greet_user"});
    CHECK(get_json(cli, "/api/v1/tasks?tags=math&tags=nonexistent") == json::array());
    json filtered = get_json(cli, "/api/v1/tasks?tags=demo,simple");
    REQUIRE(filtered.size() == 1);
    for (const auto &[key, value] : kGreetUserInfo.items()) CHECK(filtered[0][key] == value);
}

TEST_CASE("get one task") {
    Service svc;
    json t = get_json(svc.cli(), "/api/v1/tasks/greet_user");
    for (const auto &item : kGreetUserInfo.items()) CHECK_MESSAGE(t[item.key()] == item.value(), item.key());
    json listed = find_task(get_json(svc.cli(), "/api/v1/tasks"), "greet_user");
    CHECK(t == listed);

    json m = get_json(svc.cli(), "/api/v1/tasks/multiply_numbers");
    CHECK(m["name"] == "multiply_numbers");
    CHECK(m["tags"] == json::array({"demo", "math"}));
}

TEST_CASE("get unknown task: 404 problem+json") {
    Service svc;
    auto res = svc.cli().Get("/api/v1/tasks/non_existent");
    json p = check_problem(res, 404, "not found");
    CHECK_CONTAINS(p["detail"].get<std::string>(), "non_existent");
    CHECK(p["instance"] == "/api/v1/tasks/non_existent");
    CHECK(p["title"] == "Not Found");
}

TEST_CASE("execute: 202 with job_id and message") {
    Service svc;
    auto res = post_json(svc.cli(), "/api/v1/tasks/greet_user/$execute", {{"params", {{"name", "Bob"}}}});
    REQUIRE_STATUS(res, 202);
    CHECK(res->get_header_value("Content-Type") == "application/json");
    json j = body_json(res);
    REQUIRE(is_ulid(j["job_id"]));
    std::string id = j["job_id"];
    CHECK(id.size() == 26);
    CHECK(j["message"] == "Task 'greet_user' submitted for execution. Job ID: " + id);
    CHECK(res->get_header_value("Location") == "/api/v1/jobs/" + id);
    json job = wait_job(svc.cli(), id);
    CHECK(job["status"] == "completed");
    CHECK(get_artifact(svc.cli(), job["artifact_id"])["data"]["result"] == json{{"message", "Hello, Bob!"}});
}

TEST_CASE("execute: %24execute is the same route as $execute") {
    Service svc;
    auto res = post_json(svc.cli(), "/api/v1/tasks/greet_user/%24execute", {{"params", {{"name", "Enc"}}}});
    REQUIRE_STATUS(res, 202);
    json j = body_json(res);
    REQUIRE(is_ulid(j["job_id"]));
    CHECK(j["message"] == "Task 'greet_user' submitted for execution. Job ID: " + j["job_id"].get<std::string>());
    json job = wait_job(svc.cli(), j["job_id"]);
    CHECK(job["status"] == "completed");
    json art = get_artifact(svc.cli(), job["artifact_id"]);
    CHECK(art["data"]["result"] == json{{"message", "Hello, Enc!"}});
    CHECK(art["data"]["params"] == json{{"name", "Enc"}});
}

TEST_CASE("execute: absent body, {}, {\"params\":null} and null all mean no params") {
    Service svc;
    auto &cli = svc.cli();
    const std::string path = "/api/v1/tasks/greet_user/$execute";
    std::vector<std::pair<std::string, httplib::Result>> cases;
    cases.emplace_back("absent body", cli.Post(path.c_str(), "", "application/json"));
    cases.emplace_back("{}", cli.Post(path.c_str(), "{}", "application/json"));
    cases.emplace_back("{\"params\":null}", cli.Post(path.c_str(), R"({"params":null})", "application/json"));
    cases.emplace_back("null", cli.Post(path.c_str(), "null", "application/json"));
    cases.emplace_back("{\"params\":{}}", cli.Post(path.c_str(), R"({"params":{}})", "application/json"));
    for (auto &entry : cases) {
        const std::string &label = entry.first;
        auto &res = entry.second;
        INFO("body: " << label);
        REQUIRE_STATUS(res, 202);
        std::string id = body_json(res)["job_id"];
        json job = wait_job(cli, id);
        CHECK(job["status"] == "completed");
        json art = get_artifact(cli, job["artifact_id"]);
        CHECK(art["data"] == json{{"task_name", "greet_user"},
                                  {"params", json::object()},
                                  {"result", {{"message", "Hello, World!"}}},
                                  {"error", nullptr}});
    }
}

TEST_CASE("execute: malformed JSON body → 400") {
    Service svc;
    auto res = svc.cli().Post("/api/v1/tasks/greet_user/$execute", "{\"params\": {", "application/json");
    json p = check_problem(res, 400, "JSON");
    CHECK_CONTAINS(p["detail"].get<std::string>(), "Malformed");
    CHECK(p["instance"] == "/api/v1/tasks/greet_user/$execute");
    // Nothing was submitted.
    CHECK(get_json(svc.cli(), "/api/v1/jobs") == json::array());
}

TEST_CASE("execute: params not an object, or a body that is not an object → 400") {
    Service svc;
    auto &cli = svc.cli();
    check_problem(cli.Post("/api/v1/tasks/greet_user/$execute", R"({"params":[1,2]})", "application/json"), 400,
                  "params must be a JSON object");
    check_problem(cli.Post("/api/v1/tasks/greet_user/$execute", R"({"params":"Alice"})", "application/json"), 400,
                  "params must be a JSON object");
    check_problem(cli.Post("/api/v1/tasks/greet_user/$execute", "[1,2]", "application/json"), 400,
                  "must be a JSON object");
    check_problem(cli.Post("/api/v1/tasks/greet_user/$execute", "42", "application/json"), 400,
                  "must be a JSON object");
    check_problem(cli.Post("/api/v1/tasks/greet_user/$execute", "\"x\"", "application/json"), 400,
                  "must be a JSON object");
    CHECK(get_json(cli, "/api/v1/jobs") == json::array());
}

TEST_CASE("execute: unknown task → 404") {
    Service svc;
    auto res = post_json(svc.cli(), "/api/v1/tasks/non_existent/$execute", json::object());
    json p = check_problem(res, 404, "not found");
    CHECK(p["detail"] == "Task 'non_existent' not found in registry");
}

TEST_CASE("execute: parameters are validated before the job is accepted") {
    Service svc;
    auto &cli = svc.cli();
    const std::string add = "/api/v1/tasks/add/$execute";

    {
        INFO("missing required parameter names it");
        json p = check_problem(post_json(cli, add, {{"params", {{"a", 1}}}}), 400, "'b'");
        CHECK_CONTAINS(p["detail"].get<std::string>(), "missing");
        CHECK_CONTAINS(p["detail"].get<std::string>(), "add");
    }
    {
        INFO("no params at all for a task with required ones");
        check_problem(post_json(cli, add, json::object()), 400, "'a'");
    }
    {
        INFO("unknown parameter names it");
        json p = check_problem(
            post_json(cli, "/api/v1/tasks/greet_user/$execute", {{"params", {{"name", "A"}, {"x", 1}}}}), 400, "'x'");
        CHECK_CONTAINS(p["detail"].get<std::string>(), "unknown");
    }
    {
        INFO("wrong type names it");
        json p = check_problem(post_json(cli, add, {{"params", {{"a", "x"}, {"b", 1}}}}), 400, "'a'");
        CHECK_CONTAINS(p["detail"].get<std::string>(), "integer");
    }
    {
        INFO("a float where an int is expected");
        check_problem(post_json(cli, add, {{"params", {{"a", 1.5}, {"b", 2}}}}), 400, "'a'");
    }
    {
        INFO("null for a required string");
        check_problem(post_json(cli, "/api/v1/tasks/greet_user/$execute", {{"params", {{"name", nullptr}}}}), 400,
                      "'name'");
    }
    {
        INFO("an int out of range");
        check_problem(post_json(cli, add, {{"params", {{"a", 1}, {"b", 1LL << 40}}}}), 400, "'b'");
    }
    // None of them created a job.
    CHECK(get_json(cli, "/api/v1/jobs") == json::array());
}

}  // TEST_SUITE("tasks")
