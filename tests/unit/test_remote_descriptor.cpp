// descriptor_to_json() / descriptor_from_json(): the descriptor a probe
// child reports, read back by a host that never maps the plugin. For the
// built plugins it must read exactly as read_descriptor()'s copy; hostile
// text (plugin code ran where it was written) is refused with one reason,
// never a crash or an exception.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <taskhost/abi.h>
#include <nlohmann/json.hpp>

#include "model/task_info.hpp"
#include "plugins/descriptor.hpp"

using namespace taskhost;
using nlohmann::json;
using plugins::Descriptor;
using plugins::descriptor_from_json;
using plugins::descriptor_to_json;
using plugins::read_descriptor;
namespace fs = std::filesystem;

namespace {

// A built plugin, mapped for the length of a test.
class Mapped {
public:
    explicit Mapped(const fs::path &file) : handle_(::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)) {
        INFO(file.string() << ": " << (handle_ ? "" : ::dlerror()));
        REQUIRE(handle_ != nullptr);
    }
    ~Mapped() { ::dlclose(handle_); }
    Mapped(const Mapped &) = delete;
    Mapped &operator=(const Mapped &) = delete;
    const th_plugin_desc *entry() const {
        auto fn = reinterpret_cast<th_plugin_entry_fn>(::dlsym(handle_, TH_PLUGIN_ENTRY_NAME));
        REQUIRE((fn != nullptr));
        return fn();
    }

private:
    void *handle_;
};

std::string text(const char *s) { return s ? std::string("\"") + s + "\"" : "NULL"; }

// Everything a host reads from a descriptor after loading, side by side.
void check_same(const Descriptor &local, const Descriptor &remote) {
    const th_plugin_desc &a = local.plugin(), &b = remote.plugin();
    CHECK(text(a.name) == text(b.name));
    CHECK(text(a.version) == text(b.version));
    CHECK(text(a.build_info) == text(b.build_info));
    CHECK(a.abi_major == b.abi_major);
    CHECK(a.abi_minor == b.abi_minor);
    CHECK(b.struct_size == sizeof(th_plugin_desc));
    CHECK(local.has_init() == remote.has_init());
    CHECK(local.has_shutdown() == remote.has_shutdown());
    CHECK(local.has_init() == (a.init != nullptr));
    CHECK((b.init == nullptr && b.shutdown == nullptr));
    REQUIRE(a.task_count == b.task_count);
    for (uint32_t i = 0; i < a.task_count; ++i) {
        const th_task_desc &s = a.tasks[i], &t = b.tasks[i];
        CAPTURE(s.name);
        CHECK(model::render_task_info(s, a.name, a.version ? a.version : "") ==
              model::render_task_info(t, b.name, b.version ? b.version : ""));
        CHECK(text(s.params_schema_json) == text(t.params_schema_json));
        CHECK(s.default_timeout_s == t.default_timeout_s);
        CHECK(s.priority == t.priority);
        CHECK(s.retry_max_attempts == t.retry_max_attempts);
        CHECK(s.retry_flags == t.retry_flags);
        CHECK(s.retry_delay_s == t.retry_delay_s);
        CHECK(s.retry_max_delay_s == t.retry_max_delay_s);
        CHECK(text(s.every_cron) == text(t.every_cron));
        CHECK(text(s.every_tz) == text(t.every_tz));
        CHECK(local.has_validate(i) == remote.has_validate(i));
        CHECK(local.has_validate(i) == (s.validate != nullptr));
        CHECK((t.invoke == nullptr && t.validate == nullptr));
        CHECK((local.params_schema(i) == nullptr) == (remote.params_schema(i) == nullptr));
        REQUIRE(s.param_count == t.param_count);
        for (uint32_t k = 0; k < s.param_count; ++k) {
            CHECK(s.params[k].flags == t.params[k].flags);
            CHECK(text(s.params[k].schema_json) == text(t.params[k].schema_json));
            CHECK(text(s.params[k].default_json) == text(t.params[k].default_json));
        }
    }
    // Read back, it reports the same text again.
    CHECK(descriptor_to_json(local) == descriptor_to_json(remote));
}

// A descriptor the host accepts, as JSON, to be spoiled one member at a time.
json sound() {
    return json::parse(R"({
        "name": "hostile", "version": "1.0.0", "build_info": null, "abi_major": 1, "abi_minor": 1,
        "declaration_error": null, "has_init": false, "has_shutdown": false,
        "tasks": [{"name": "t", "doc": null, "signature": "(a: int) -> json", "tags": ["x"],
                   "params": [{"flags": 1, "name": "a", "annotation": "int", "default_json": null,
                               "schema_json": "{\"type\": \"integer\"}"}],
                   "params_schema_json": "{\"type\": \"object\"}", "default_timeout_s": 0, "has_validate": true}]
    })");
}

std::string refusal(const std::string &text) {
    Result<std::unique_ptr<const Descriptor>> read(fail(ErrorKind::internal, "not run"));
    CHECK_NOTHROW(read = descriptor_from_json(text));
    if (read) return "(accepted)";
    CHECK(read.error().kind == ErrorKind::invalid);
    return read.error().message;
}
std::string refusal(const json &doc) { return refusal(doc.dump()); }

const std::string unusable = "the trial process reported an unusable descriptor: ";

th_status invoke_ok(const th_host_api *, th_call *, const char *, size_t) { return TH_OK; }

}  // namespace

TEST_SUITE("descriptor") {

TEST_CASE("remote descriptor: every built plugin reads the same through JSON as loaded") {
    const std::vector<fs::path> files = {
        fs::path(TASKHOST_PLUGIN_DIR) / "demo.so",           fs::path(TASKHOST_PLUGIN_DIR) / "math.so",
        fs::path(TASKHOST_PLUGIN_DIR) / "storage.so",        fs::path(TASKHOST_PLUGIN_DIR) / "data.so",
        fs::path(TASKHOST_TEST_PLUGIN_DIR) / "types.so",     fs::path(TASKHOST_TEST_PLUGIN_DIR) / "timeouts.so",
        fs::path(TASKHOST_TEST_PLUGIN_DIR) / "abi_older.so", fs::path(TASKHOST_TEST_PLUGIN_DIR) / "abi_newer.so",
        fs::path(TASKHOST_TEST_PLUGIN_DIR) / "abi_1_0.so",   fs::path(TASKHOST_TEST_PLUGIN_DIR) / "versioned_v1.so",
        fs::path(TASKHOST_TEST_PLUGIN_DIR) / "ticker_v2.so",
    };
    for (const fs::path &file : files) {
        CAPTURE(file.string());
        Mapped plugin(file);
        auto local = read_descriptor(plugin.entry());
        REQUIRE(local);
        const std::string reported = descriptor_to_json(**local);
        CHECK(reported.find('\n') == std::string::npos);  // one report line
        auto remote = descriptor_from_json(reported);
        INFO((remote ? std::string() : remote.error().message));
        REQUIRE(remote);
        CHECK((*remote)->is_remote());
        CHECK_FALSE((*local)->is_remote());
        check_same(**local, **remote);
    }
}

TEST_CASE("remote descriptor: it owns its text and keeps the has_* answers the plugin's pointers gave") {
    auto remote = descriptor_from_json(sound().dump());
    REQUIRE(remote);
    const th_plugin_desc &d = (*remote)->plugin();
    CHECK(std::string(d.name) == "hostile");
    REQUIRE(d.task_count == 1);
    CHECK((*remote)->has_validate(0));
    CHECK_FALSE((*remote)->has_init());
    CHECK(d.tasks[0].tag_count == 1);
    CHECK(std::string(d.tasks[0].tags[0]) == "x");
    CHECK(d.tasks[0].params[0].flags == TH_PARAM_REQUIRED);
    REQUIRE((*remote)->params_schema(0) != nullptr);  // compiled, as a loaded one's
    CHECK((*remote)->params_schema(0)->check_params(json::object()).ok());

    json no_validate = sound();
    no_validate["tasks"][0]["has_validate"] = false;
    no_validate["has_init"] = true;
    auto other = descriptor_from_json(no_validate.dump());
    REQUIRE(other);
    CHECK_FALSE((*other)->has_validate(0));
    CHECK((*other)->has_init());
    CHECK(((*other)->plugin().init == nullptr));
}

TEST_CASE("remote descriptor: text that is not a descriptor is refused, saying what is wrong") {
    CHECK(refusal(std::string("not json")) == unusable + "it is not JSON");
    CHECK(refusal(std::string("")) == unusable + "it is not JSON");
    CHECK(refusal(std::string(R"({"name": "x")")) == unusable + "it is not JSON");
    CHECK(refusal(json::array()) == unusable + "the descriptor is not an object");
    CHECK(refusal(std::string(100, '[') + std::string(100, ']')) == unusable + "it is nested too deeply");
    CHECK(refusal(std::string(plugins::max_descriptor_json_bytes + 1, ' ')) == unusable + "it is larger than 4 MiB");

    json doc = sound();
    doc.erase("name");
    CHECK(refusal(doc) == unusable + "the descriptor has no \"name\"");
    doc = sound();
    doc["name"] = 5;
    CHECK(refusal(doc) == unusable + "the descriptor's \"name\" is not a string or null");
    doc = sound();
    doc["tasks"] = json::object();
    CHECK(refusal(doc) == unusable + "the descriptor's \"tasks\" is not an array");
    doc = sound();
    doc["tasks"][0] = "t";
    CHECK(refusal(doc) == unusable + "task #0 is not an object");
    doc = sound();
    doc["tasks"][0].erase("has_validate");
    CHECK(refusal(doc) == unusable + "task #0 has no \"has_validate\"");
    doc = sound();
    doc["has_init"] = "yes";
    CHECK(refusal(doc) == unusable + "the descriptor's \"has_init\" is not true or false");
    doc = sound();
    doc["tasks"][0]["default_timeout_s"] = "10";
    CHECK(refusal(doc) == unusable + "task #0's \"default_timeout_s\" is not a number or null");
    doc = sound();
    doc["tasks"][0]["priority"] = "high";
    CHECK(refusal(doc) == unusable + "task #0's \"priority\" is not an integer");
    doc = sound();
    doc["tasks"][0]["tags"][0] = json::object();
    CHECK(refusal(doc) == unusable + "task #0's tag #0 is not a string or null");
    doc = sound();
    doc["tasks"][0]["params"][0]["flags"] = 1.5;
    CHECK(refusal(doc) == unusable + "task #0's parameter #0's \"flags\" is not a whole number from 0 to 4294967295");
    doc = sound();
    doc["abi_major"] = -1;
    CHECK(refusal(doc) == unusable + "the descriptor's \"abi_major\" is not a whole number from 0 to 65535");
    doc = sound();
    doc["tasks"][0]["doc"] = std::string("cut\0short", 9);
    CHECK(refusal(doc) == unusable + "task #0's \"doc\" holds a NUL character");
}

TEST_CASE("remote descriptor: huge counts are refused before anything is built") {
    json doc = sound();
    const json task = doc["tasks"][0];
    doc["tasks"] = json::array();
    for (uint32_t i = 0; i <= plugins::max_tasks_per_plugin; ++i) {
        json t = task;
        t["name"] = "t" + std::to_string(i);
        doc["tasks"].push_back(std::move(t));
    }
    CHECK(refusal(doc) == unusable + "the plugin declares 10001 tasks; at most 10000 are allowed");

    doc = sound();
    doc["tasks"][0]["tags"] = json::array();
    for (uint32_t i = 0; i <= plugins::max_tags_per_task; ++i) doc["tasks"][0]["tags"].push_back("x");
    CHECK(refusal(doc) == unusable + "task #0: declares 1001 tags; at most 1000 are allowed");

    doc = sound();
    doc["tasks"][0]["params"] = json::array();
    for (uint32_t i = 0; i <= plugins::max_params_per_task; ++i) doc["tasks"][0]["params"].push_back(nullptr);
    CHECK(refusal(doc) == unusable + "task #0: declares 1001 parameters; at most 1000 are allowed");
}

TEST_CASE("remote descriptor: what it describes gets read_descriptor's checks and reasons") {
    json doc = sound();
    doc["name"] = nullptr;
    CHECK(refusal(doc) == "the plugin has no name");
    doc = sound();
    doc["abi_major"] = 2;
    CHECK(refusal(doc) == "ABI mismatch: plugin built for ABI 2.1, host supports ABI 1.x");
    doc = sound();
    doc["declaration_error"] = "task 't': 2 parameter name(s) given for 1 caller parameter(s)";
    CHECK(refusal(doc) == "invalid declaration: task 't': 2 parameter name(s) given for 1 caller parameter(s)");
    doc = sound();
    doc["tasks"][0]["name"] = "bad name";
    CHECK(refusal(doc) == "invalid task name 'bad name' (must match ^[a-zA-Z0-9_-]+$)");
    doc = sound();
    doc["tasks"][0]["name"] = nullptr;
    CHECK(refusal(doc) == "invalid task name '' (must match ^[a-zA-Z0-9_-]+$)");
    doc = sound();
    doc["tasks"].push_back(doc["tasks"][0]);
    CHECK(refusal(doc) == "duplicate task name 't' in the plugin");
    doc = sound();
    doc["tasks"][0]["params_schema_json"] = R"({"type": 5})";
    CHECK(refusal(doc) ==
          "invalid declaration: task 't': params_schema_json is not a valid JSON Schema: JSON value is not a "
          "string.");
    doc = sound();
    doc["tasks"][0]["params"][0]["schema_json"] = "{";
    CHECK(refusal(doc).starts_with("invalid declaration: task 't': parameter 'a': schema_json is not valid JSON"));
    doc = sound();
    doc["tasks"][0]["params_schema_json"] = std::string(200, '[') + std::string(200, ']');
    CHECK(refusal(doc) == "invalid declaration: task 't': params_schema_json is nested deeper than 128 levels");
}

TEST_CASE("descriptor: text that is not UTF-8, and huge counts, are refused when read in process too") {
    const char *const tags[] = {"ok", "\xff"};
    th_task_desc task{};
    task.struct_size = sizeof task;
    task.name = "t";
    task.invoke = invoke_ok;
    task.tags = tags;
    task.tag_count = 2;
    th_plugin_desc plugin{};
    plugin.magic = TH_ABI_MAGIC;
    plugin.abi_major = TH_ABI_MAJOR;
    plugin.abi_minor = TH_ABI_MINOR;
    plugin.struct_size = sizeof plugin;
    plugin.name = "latin1";
    plugin.task_count = 1;
    plugin.tasks = &task;
    auto read = read_descriptor(&plugin);
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "task 't': tag #1 is not valid UTF-8 text");

    task.tag_count = 1;
    task.doc = "caf\xe9";
    read = read_descriptor(&plugin);
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "task 't': doc is not valid UTF-8 text");

    task.doc = "café";
    CHECK(read_descriptor(&plugin));

    task.tags = nullptr;
    read = read_descriptor(&plugin);
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "task 't': declares tags but no tag table");

    // Never walked: a count this large would read far past any table.
    task.tag_count = 0;
    plugin.task_count = 4000000000u;
    read = read_descriptor(&plugin);
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "the plugin declares 4000000000 tasks; at most 10000 are allowed");
    plugin.task_count = 1;
    task.param_count = 5000;
    read = read_descriptor(&plugin);
    REQUIRE_FALSE(read);
    CHECK(read.error().message == "task #0: declares 5000 parameters; at most 1000 are allowed");
}

}  // TEST_SUITE("descriptor")
