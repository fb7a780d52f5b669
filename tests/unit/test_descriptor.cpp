// read_descriptor(): plugin descriptors of other struct sizes (older and
// newer ABI 1 minors) become the host's layout; tables whose sizes are
// inconsistent or too small are refused with the reason.
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <taskhost/abi.h>

#include "plugins/descriptor.hpp"

using namespace taskhost;
using plugins::Descriptor;
using plugins::read_descriptor;

namespace {

th_status invoke_a(const th_host_api *, th_call *, const char *, size_t) { return TH_OK; }
th_status invoke_b(const th_host_api *, th_call *, const char *, size_t) { return TH_OK; }
th_status validate_a(const char *, size_t, th_sink *) { return TH_OK; }

// A newer minor: the host's structs followed by members it does not know.
struct NewerParam {
    th_param_desc known;
    uint64_t future[2];
};
struct NewerTask {
    th_task_desc known;
    uint64_t future[3];
};
struct NewerPlugin {
    th_plugin_desc known;
    uint64_t future[2];
};

// An older minor: task descriptors end at invoke, parameters at default_json.
struct OlderParam {
    uint32_t struct_size;
    uint32_t flags;
    const char *name;
    const char *annotation;
    const char *default_json;
};
static_assert(sizeof(OlderParam) == TH_PARAM_DESC_MIN_SIZE);
struct OlderTask {
    uint32_t struct_size;
    uint32_t reserved;
    const char *name;
    const char *doc;
    const char *signature;
    const char *const *tags;
    uint32_t tag_count;
    uint32_t param_count;
    const OlderParam *params;
    const char *params_schema_json;
    double default_timeout_s;
    th_status (*invoke)(const th_host_api *, th_call *, const char *, size_t);
};
static_assert(sizeof(OlderTask) == TH_TASK_DESC_MIN_SIZE);

th_plugin_desc plugin_with(const void *tasks, uint32_t task_count) {
    th_plugin_desc d{};
    d.magic = TH_ABI_MAGIC;
    d.abi_major = TH_ABI_MAJOR;
    d.abi_minor = TH_ABI_MINOR;
    d.struct_size = sizeof d;
    d.task_count = task_count;
    d.name = "layouts";
    d.version = "1.0.0";
    d.tasks = static_cast<const th_task_desc *>(tasks);
    return d;
}

std::string refusal(const th_plugin_desc &d) {
    auto read = read_descriptor(&d);
    if (read) return "(accepted)";
    CHECK(read.error().kind == ErrorKind::invalid);
    return read.error().message;
}

std::unique_ptr<const Descriptor> accepted(const th_plugin_desc &d) {
    auto read = read_descriptor(&d);
    INFO((read ? std::string() : read.error().message));
    REQUIRE(read);
    return std::move(*read);
}

}  // namespace

TEST_SUITE("descriptor") {

TEST_CASE("descriptor: a newer plugin's larger structs are walked by its struct_size") {
    NewerParam params[2] = {};
    for (auto &p : params) {
        p.known.struct_size = sizeof(NewerParam);
        p.future[0] = p.future[1] = 0xdeadbeefdeadbeefu;
    }
    params[0].known.name = "x";
    params[0].known.flags = TH_PARAM_REQUIRED;
    params[0].known.schema_json = R"({"type":"integer"})";
    params[1].known.name = "y";
    params[1].known.default_json = "2";
    NewerTask tasks[2] = {};
    for (auto &t : tasks) {
        t.known.struct_size = sizeof(NewerTask);
        t.future[0] = t.future[1] = t.future[2] = 0xdeadbeefdeadbeefu;
    }
    tasks[0].known.name = "first";
    tasks[0].known.param_count = 2;
    tasks[0].known.params = &params[0].known;
    tasks[0].known.invoke = invoke_a;
    tasks[0].known.validate = validate_a;
    tasks[1].known.name = "second";
    tasks[1].known.invoke = invoke_b;
    tasks[1].known.default_timeout_s = 7.5;
    NewerPlugin plugin{plugin_with(&tasks[0].known, 2), {1, 2}};
    plugin.known.struct_size = sizeof plugin;
    plugin.known.abi_minor = TH_ABI_MINOR + 1;
    plugin.known.build_info = "newer";

    auto copy = accepted(plugin.known);
    const th_plugin_desc &d = copy->plugin();
    CHECK(d.struct_size == sizeof(th_plugin_desc));
    CHECK(d.abi_minor == TH_ABI_MINOR + 1);
    CHECK(std::string(d.build_info) == "newer");
    CHECK(d.declaration_error == nullptr);
    REQUIRE(d.task_count == 2);
    CHECK(d.tasks != &tasks[0].known);  // the host's own copy
    CHECK(d.tasks[0].struct_size == sizeof(th_task_desc));
    CHECK(std::string(d.tasks[0].name) == "first");
    CHECK((d.tasks[0].invoke == invoke_a));
    CHECK((d.tasks[0].validate == validate_a));
    CHECK(std::string(d.tasks[1].name) == "second");
    CHECK((d.tasks[1].invoke == invoke_b));
    CHECK((d.tasks[1].validate == nullptr));
    CHECK(d.tasks[1].default_timeout_s == 7.5);
    REQUIRE(d.tasks[0].param_count == 2);
    CHECK(d.tasks[0].params[0].struct_size == sizeof(th_param_desc));
    CHECK(std::string(d.tasks[0].params[0].name) == "x");
    CHECK(std::string(d.tasks[0].params[0].schema_json) == R"({"type":"integer"})");
    CHECK(std::string(d.tasks[0].params[1].name) == "y");
    CHECK(std::string(d.tasks[0].params[1].default_json) == "2");
    CHECK(d.tasks[1].param_count == 0);
}

TEST_CASE("descriptor: an older plugin's smaller structs: the members it lacks are zero") {
    // Each element is followed by the next one: a host reading past the
    // declared size would find the next element's bytes, not zeros.
    OlderParam params[2] = {{sizeof(OlderParam), TH_PARAM_REQUIRED, "a", "int", nullptr},
                            {sizeof(OlderParam), 0, "b", "string", "\"bee\""}};
    OlderTask tasks[2] = {
        {sizeof(OlderTask), 0, "older_one", "doc", "(a, b)", nullptr, 0, 2, params, "{}", 0.0, invoke_a},
        {sizeof(OlderTask), 0, "older_two", nullptr, "()", nullptr, 0, 0, nullptr, nullptr, 0.0, invoke_b},
    };
    th_plugin_desc plugin = plugin_with(tasks, 2);
    plugin.abi_minor = 0;
    plugin.struct_size = offsetof(th_plugin_desc, build_info);  // ends at shutdown
    plugin.build_info = "beyond its size";
    plugin.declaration_error = "beyond its size";

    auto copy = accepted(plugin);
    const th_plugin_desc &d = copy->plugin();
    CHECK(d.build_info == nullptr);
    CHECK(d.declaration_error == nullptr);
    REQUIRE(d.task_count == 2);
    for (uint32_t i = 0; i < 2; ++i) {
        CHECK((d.tasks[i].validate == nullptr));
        CHECK(d.tasks[i].default_timeout_s == 0);
    }
    CHECK(std::string(d.tasks[0].name) == "older_one");
    CHECK(std::string(d.tasks[1].name) == "older_two");
    CHECK((d.tasks[1].invoke == invoke_b));
    REQUIRE(d.tasks[0].param_count == 2);
    CHECK(std::string(d.tasks[0].params[1].name) == "b");
    CHECK(std::string(d.tasks[0].params[1].default_json) == "\"bee\"");
    for (uint32_t j = 0; j < 2; ++j) CHECK(d.tasks[0].params[j].schema_json == nullptr);
}

TEST_CASE("descriptor: tables whose elements disagree on their size are refused") {
    th_task_desc tasks[2] = {};
    tasks[0].struct_size = sizeof(th_task_desc);
    tasks[0].name = "one";
    tasks[0].invoke = invoke_a;
    tasks[1] = tasks[0];
    tasks[1].name = "two";
    tasks[1].struct_size = sizeof(th_task_desc) + 8;
    CHECK(refusal(plugin_with(tasks, 2)) == "task #1 declares struct_size " + std::to_string(sizeof(th_task_desc) + 8) +
                                                " but task #0 declares " + std::to_string(sizeof(th_task_desc)) +
                                                "; every task of one table must have the same size");

    th_param_desc params[2] = {};
    params[0].struct_size = sizeof(th_param_desc);
    params[0].name = "a";
    params[1].struct_size = TH_PARAM_DESC_MIN_SIZE;
    params[1].name = "b";
    tasks[1].struct_size = sizeof(th_task_desc);
    tasks[1].param_count = 2;
    tasks[1].params = params;
    CHECK(refusal(plugin_with(tasks, 2)) == "task 'two': parameter #1 declares struct_size " +
                                                std::to_string(TH_PARAM_DESC_MIN_SIZE) + " but parameter #0 declares " +
                                                std::to_string(sizeof(th_param_desc)) +
                                                "; every parameter of one table must have the same size");
}

TEST_CASE("descriptor: sizes below the ABI 1 minimum, or not a struct's, are refused") {
    th_task_desc task{};
    task.name = "small";
    task.invoke = invoke_a;
    task.struct_size = TH_TASK_DESC_MIN_SIZE - 8;
    CHECK(refusal(plugin_with(&task, 1)) ==
          "task #0 declares struct_size " + std::to_string(TH_TASK_DESC_MIN_SIZE - 8) + ", below the " +
              std::to_string(TH_TASK_DESC_MIN_SIZE) + " bytes every ABI 1 task descriptor has");
    task.struct_size = TH_TASK_DESC_MIN_SIZE + 4;
    CHECK(refusal(plugin_with(&task, 1)) == "task #0 declares struct_size " +
                                                std::to_string(TH_TASK_DESC_MIN_SIZE + 4) +
                                                ", not a multiple of 8 (not the size of a task descriptor)");

    th_param_desc param{};
    param.struct_size = TH_PARAM_DESC_MIN_SIZE - 8;
    param.name = "p";
    task.struct_size = sizeof task;
    task.param_count = 1;
    task.params = &param;
    CHECK(refusal(plugin_with(&task, 1)) ==
          "task 'small': parameter #0 declares struct_size " + std::to_string(TH_PARAM_DESC_MIN_SIZE - 8) +
              ", below the " + std::to_string(TH_PARAM_DESC_MIN_SIZE) + " bytes every ABI 1 parameter descriptor has");

    th_plugin_desc plugin = plugin_with(nullptr, 0);
    plugin.struct_size = TH_PLUGIN_DESC_MIN_SIZE - 8;
    CHECK(refusal(plugin) == "descriptor too small (" + std::to_string(TH_PLUGIN_DESC_MIN_SIZE - 8) +
                                 " bytes, ABI 1 has at least " + std::to_string(TH_PLUGIN_DESC_MIN_SIZE) + ")");
    plugin.struct_size = TH_PLUGIN_DESC_MIN_SIZE;  // no optional member at all
    auto copy = accepted(plugin);
    CHECK((copy->plugin().init == nullptr));
    CHECK(copy->plugin().task_count == 0);
    CHECK(copy->plugin().tasks == nullptr);
}

TEST_CASE("descriptor: a declaration the plugin reports as wrong is refused before its tasks are read") {
    th_plugin_desc plugin = plugin_with(reinterpret_cast<const th_task_desc *>(alignof(th_task_desc)), 3);
    plugin.declaration_error = "task 'x': 2 parameter name(s) given for 1 caller parameter(s)";
    CHECK(refusal(plugin) == "invalid declaration: task 'x': 2 parameter name(s) given for 1 caller parameter(s)");
}

TEST_CASE("descriptor: a schedule (every_cron, every_tz) is read from ABI 1.5 on, and refused if unreadable") {
    th_task_desc task{};
    task.struct_size = sizeof task;
    task.name = "ticking";
    task.invoke = invoke_a;
    task.every_cron = "*/10 * * * *";
    task.every_tz = "America/New_York";
    th_plugin_desc plugin = plugin_with(&task, 1);
    auto fine = accepted(plugin);
    CHECK(std::string(fine->plugin().tasks[0].every_cron) == "*/10 * * * *");
    CHECK(std::string(fine->plugin().tasks[0].every_tz) == "America/New_York");
    // Before 1.5 those bytes meant nothing.
    plugin.abi_minor = 4;
    CHECK(accepted(plugin)->plugin().tasks[0].every_cron == nullptr);
    plugin.abi_minor = TH_ABI_MINOR;
    task.every_cron = "*/10 * * *";
    CHECK(refusal(plugin) == "invalid declaration: task 'ticking': every: cron expression needs 5 or 6 fields, got 4");
    task.every_cron = "@daily";
    task.every_tz = "Nowhere/Town";
    CHECK(refusal(plugin) == "invalid declaration: task 'ticking': every: unknown time zone 'Nowhere/Town'");
    task.every_tz = nullptr;  // UTC
    CHECK(accepted(plugin)->plugin().tasks[0].every_tz == nullptr);
    // Its runs send params {}: a required parameter refuses it.
    th_param_desc param{};
    param.struct_size = sizeof param;
    param.name = "n";
    param.flags = TH_PARAM_REQUIRED;
    task.param_count = 1;
    task.params = &param;
    CHECK(refusal(plugin) ==
          "invalid declaration: task 'ticking': every: its runs send params {}, but parameter 'n' is required");
    param.flags = 0;
    CHECK(accepted(plugin)->plugin().tasks[0].every_cron != nullptr);
}

TEST_CASE("descriptor: schemas that are not JSON, or not JSON Schemas, refuse the plugin naming the task") {
    th_param_desc param{};
    param.struct_size = sizeof param;
    param.name = "p";
    th_task_desc task{};
    task.struct_size = sizeof task;
    task.name = "checked";
    task.invoke = invoke_a;
    task.param_count = 1;
    task.params = &param;
    const th_plugin_desc plugin = plugin_with(&task, 1);

    task.params_schema_json = R"({"type": "object", "properties": {"p": {"type": "integer"}}})";
    auto fine = accepted(plugin);
    REQUIRE(fine->params_schema(0) != nullptr);
    CHECK(fine->params_schema(0)->check_params({{"p", 1}}).ok());
    CHECK_FALSE(fine->params_schema(0)->check_params({{"p", "one"}}).ok());

    task.params_schema_json = R"({"type": "object",)";
    CHECK(refusal(plugin).starts_with(
        "invalid declaration: task 'checked': params_schema_json is not valid JSON: parse error at line 1"));
    task.params_schema_json = R"({"type": 5})";
    CHECK(refusal(plugin) ==
          "invalid declaration: task 'checked': params_schema_json is not a valid JSON Schema: JSON value is not a "
          "string.");
    task.params_schema_json = R"({"properties": []})";
    CHECK(refusal(plugin) ==
          "invalid declaration: task 'checked': params_schema_json is not a valid JSON Schema: JSON value is not an "
          "object.");

    task.params_schema_json = nullptr;  // none: nothing to check against
    CHECK(accepted(plugin)->params_schema(0) == nullptr);
    param.schema_json = R"({"type": "integer", "minimum": "zero"})";
    CHECK(refusal(plugin) ==
          "invalid declaration: task 'checked': parameter 'p': schema_json is not a valid JSON Schema: Expected "
          "numeric value for minimum constraint.");
}

}  // TEST_SUITE("descriptor")
