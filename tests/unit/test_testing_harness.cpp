// The plugin authors' test harness (sdk/include/taskhost/testing.hpp), used
// as an author would: on the built example and fixture plugins.
#include <taskhost/sdk.hpp>
#include <taskhost/testing.hpp>

#include <doctest/doctest.h>

#include <string>

using taskhost::testing::CallOptions;
using taskhost::testing::Plugin;
using taskhost::testing::json;

namespace {

std::string example(const std::string &file) { return std::string(TASKHOST_PLUGIN_DIR) + "/" + file; }
std::string fixture(const std::string &file) { return std::string(TASKHOST_TEST_PLUGIN_DIR) + "/" + file; }

// A plugin declared in the test itself, whose task submits another.
struct ChainTag {};
json child(int n) { return {{"twice", 2 * n}}; }
json parent(taskhost::Scheduler &scheduler, int n) { return {{"child", scheduler.submit("child", {{"n", n}})}}; }

}  // namespace

TEST_SUITE("testing harness") {
    TEST_CASE("a task is called by name and gives its result") {
        Plugin demo = Plugin::load(example("demo.so"));
        CHECK(demo.name() == "demo");
        CHECK(demo.version() == "1.0.0");
        const auto run = demo.call("greet_user", {{"name", "Ada"}});
        REQUIRE(run.ok());
        CHECK(*run.result == json{{"message", "Hello, Ada!"}});
        CHECK(run.job_id.size() == 26);
        CHECK(demo.call("greet_user").result->at("message") == "Hello, World!");  // the declared default
        CHECK(demo.params_schema("greet_user")["properties"].contains("name"));
    }

    TEST_CASE("params are checked as the host checks them, and the task does not run") {
        Plugin demo = Plugin::load(example("demo.so"));
        const auto run = demo.call("greet_user", {{"nmae", "Ada"}});
        CHECK_FALSE(run.ok());
        CHECK_FALSE(run.error);
        REQUIRE(run.invalid_params);
        CHECK(run.invalid_params->find("nmae") != std::string::npos);
        CHECK(demo.validate("greet_user", {{"name", 5}}).has_value());
        CHECK_FALSE(demo.validate("greet_user", {{"name", "x"}}).has_value());
        CHECK_THROWS_WITH_AS(demo.call("no_such_task"), "plugin 'demo' has no task 'no_such_task'",
                             std::invalid_argument);
    }

    TEST_CASE("a failure gives the exception's type, message and a traceback") {
        Plugin demo = Plugin::load(example("demo.so"));
        const auto run = demo.call("failing_task");
        REQUIRE(run.error);
        CHECK(run.error->type == "std::invalid_argument");
        CHECK(run.error->message == "Something went wrong");
        CHECK_FALSE(run.error->traceback.empty());
    }

    TEST_CASE("cancellation is the test's to ask; progress is captured") {
        Plugin demo = Plugin::load(example("demo.so"));
        const auto finished = demo.call("slow_task", {{"seconds", 0.02}});
        REQUIRE(finished.ok());
        REQUIRE_FALSE(finished.progress.empty());
        CHECK(finished.progress.back().fraction == 1.0);
        CHECK(finished.progress.back().message == "done");

        const auto throwing = demo.call("slow_task", {{"seconds", 30}}, CallOptions{[]() -> bool {
                                             throw std::runtime_error("the test's own bug");
                                         }, ""});
        REQUIRE(throwing.error);  // reported, not thrown through the plugin
        CHECK(throwing.error->type == "taskhost::testing::HarnessError");
        CHECK(throwing.error->message == "a host callback of the harness failed: the test's own bug");

        const auto cancelled = demo.call("slow_task", {{"seconds", 30}}, CallOptions{[] { return true; }, "job-1"});
        REQUIRE(cancelled.error);
        CHECK(cancelled.error->type == "taskhost::Cancelled");
        CHECK(cancelled.job_id == "job-1");
    }

    TEST_CASE("init runs on the in-memory database; artifacts are kept") {
        Plugin storage = Plugin::load(example("storage.so"));
        CHECK(storage.call("count_users").result == json{{"user_count", 3}});
        storage.sql("INSERT INTO example_users (name) VALUES (?)", json::array({"Dave"}));
        CHECK(storage.call("count_users").result == json{{"user_count", 4}});

        const auto saved = storage.call("store_result", {{"data", {{"x", 1}}}});
        REQUIRE(saved.ok());
        const std::string id = saved.result->at("artifact_id");
        REQUIRE(storage.artifacts().count(id) == 1);
        CHECK(storage.artifacts().at(id)["data"] == json{{"x", 1}});
        CHECK(storage.artifacts().at(id)["level"] == 0);

        const auto steps = storage.call("long_task", {{"steps", 2}});
        REQUIRE(steps.ok());
        CHECK(steps.progress.size() == 2);
        CHECK(storage.artifacts().size() == 3);
    }

    TEST_CASE("a session commits when the task returns and rolls back when it throws") {
        Plugin types = Plugin::load(fixture("types.so"));
        REQUIRE(types.call("session_commit", {{"note", "kept"}}).ok());
        CHECK(types.call("session_rollback").error.has_value());
        CHECK(types.sql("SELECT note FROM types_session_probe") == json::array({{{"note", "kept"}}}));
        CHECK(types.call("session_count").result == json{{"count", 1}});
    }

    TEST_CASE("the scheduler records jobs of the plugin's own tasks and runs them on request") {
        Plugin types = Plugin::load(fixture("types.so"));
        // greet_user is another plugin's task: the harness, like a host without it, says so.
        const auto elsewhere = types.call("schedule_child", {{"name", "Ada"}});
        REQUIRE(elsewhere.error);
        CHECK(elsewhere.error->message.find("task 'greet_user' not found") != std::string::npos);
        CHECK(types.scheduled().empty());

        using taskhost::task;
        Plugin chain = Plugin::from_descriptor(taskhost::build_plugin<ChainTag>(
            "chain", "1.0.0", task("child", child).params("n"), task("parent", parent).params("n")));
        const auto run = chain.call("parent", {{"n", 21}});
        REQUIRE(run.ok());
        REQUIRE(chain.scheduled().size() == 1);
        CHECK(chain.scheduled()[0].id == run.result->at("child"));
        CHECK(chain.scheduled()[0].task == "child");
        CHECK_FALSE(chain.scheduled()[0].run);
        chain.run_scheduled();
        REQUIRE(chain.scheduled()[0].run);
        CHECK(chain.scheduled()[0].run->result == json{{"twice", 42}});
        CHECK(chain.call("parent", {{"n", "x"}}).invalid_params.has_value());
    }

    TEST_CASE("a plugin the host would refuse is refused with the reason") {
        CHECK_THROWS_WITH_AS(Plugin::load(fixture("not_a_plugin.so")), doctest::Contains("not_a_plugin.so"),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(Plugin::load(fixture("no_entry.so")), doctest::Contains("no entry symbol"),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(Plugin::load(fixture("init_fails.so")), doctest::Contains("would be refused"),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(Plugin::load(fixture("count_mismatch.so")),
                             doctest::Contains("would be refused: invalid declaration: "), std::runtime_error);
    }
}
