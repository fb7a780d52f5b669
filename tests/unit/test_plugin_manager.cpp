// PluginManager through its seams: a plugins folder, a Registry and the init
// callback. The plugins are the built examples and test fixtures, copied into
// a fresh folder per test.
#include <doctest/doctest.h>

#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "plugins/descriptor.hpp"
#include "plugins/manager.hpp"
#include "registry/registry.hpp"
#include "util/ulid.hpp"

using namespace taskhost;
using nlohmann::json;
using taskhost::plugins::PluginManager;
using taskhost::plugins::ReloadReport;
namespace fs = std::filesystem;

namespace {

const fs::path examples = TASKHOST_PLUGIN_DIR;
const fs::path fixtures = TASKHOST_TEST_PLUGIN_DIR;

const std::set<std::string> demo_tasks = {"failing_task", "greet",     "greet_user", "hello",
                                          "process_data", "safe_task", "slow_task"};
const std::set<std::string> math_tasks = {"add", "multiply", "multiply_numbers"};

// The fixtures the host must refuse on their own, each with its reason. The
// loader's message that ends not_a_plugin's reason varies: only the start is fixed.
struct Broken {
    std::string fixture, reason;
    bool exact = true;
};
const std::vector<Broken> broken = {
    {"abi_mixed_sizes.so", "task #1 declares struct_size " + std::to_string(sizeof(th_task_desc) + 8) +
                               " but task #0 declares " + std::to_string(sizeof(th_task_desc)) +
                               "; every task of one table must have the same size"},
    {"bad_name.so", "invalid task name 'bad name' (must match ^[a-zA-Z0-9_-]+$)"},
    {"bad_schema.so",
     "invalid declaration: task 'bad_schema_task': params_schema_json is not a valid JSON Schema: JSON value is "
     "not a string."},
    {"count_mismatch.so",
     "invalid declaration: task 'count_mismatch': 2 parameter name(s) given for 1 caller parameter(s); name every "
     "non-service parameter, in order, with .param()/.params()"},
    {"init_fails.so", "init failed: database unavailable"},
    {"no_entry.so", "no entry symbol taskhost_plugin_v1: not a taskhost plugin"},
    {"not_a_plugin.so", "not a loadable shared library: ", false},
    {"wrong_abi.so", "ABI mismatch: plugin built for ABI 99.0, host supports ABI 1.x"},
};

bool matches(const std::string &reason, const Broken &expected) {
    return expected.exact ? reason == expected.reason : reason.starts_with(expected.reason);
}

// Lists as one string, so a failed CHECK shows both sides.
std::string joined(const std::vector<std::string> &items) {
    std::string out;
    for (const auto &item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

std::string refusals(const ReloadReport &report) {
    std::string out;
    for (const auto &r : report.refused)
        out += r.file + ": " + r.reason + (r.kept_previous ? " (kept previous)" : "") + "\n";
    return out;
}

std::set<std::string> task_names(const registry::Registry &registry) {
    std::set<std::string> names;
    for (const auto &[name, task] : registry.snapshot()->tasks) names.insert(name);
    return names;
}

std::set<std::string> united(std::set<std::string> a, const std::set<std::string> &b) {
    a.insert(b.begin(), b.end());
    return a;
}

// The describe_json() entry of `file` in `state`; null when there is none.
json plugin_entry(const PluginManager &manager, const std::string &file, const std::string &state) {
    for (const auto &e : json::parse(manager.describe_json()))
        if (e["file"] == file && e["state"] == state) return e;
    return nullptr;
}

// Whether a generation's in-memory image ("<generation>-<file>") is still
// mapped into this process: unloading a generation is dlclose(), which
// unmaps it.
bool is_mapped(const std::string &image) {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
        if (line.find("/memfd:" + image + " (deleted)") != std::string::npos) return true;
    return false;
}

// A plugins folder, removed afterwards.
struct PluginFolder {
    fs::path root = fs::temp_directory_path() / ("taskhost-plugin-manager-test-" + new_ulid_string());
    fs::path dir = root / "plugins";

    PluginFolder() { fs::create_directories(dir); }
    ~PluginFolder() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    // Copy beside, then rename into place: a reload never sees half a file.
    void deploy(const fs::path &source, const std::string &name) const {
        const fs::path temporary = dir / ("." + name + ".tmp");
        fs::copy_file(source, temporary, fs::copy_options::overwrite_existing);
        fs::rename(temporary, dir / name);
    }
    void remove(const std::string &name) const { fs::remove(dir / name); }
};

// Stands in for the executor running a plugin's init: records each call and
// refuses the files in `refusals`. With run_plugin_init it then runs the
// plugin's own init with no host services, enough for a fixture to refuse.
struct FakeInit {
    struct Call {
        std::string file, plugin;
    };
    std::vector<Call> calls;
    std::map<std::string, std::string> refusals;  // file -> message
    bool run_plugin_init = false;

    PluginManager::InitPlugin callback() {
        return [this](const th_plugin_desc &desc, const std::string &file, const std::string &) -> Result<void> {
            calls.push_back({file, desc.name});
            if (auto it = refusals.find(file); it != refusals.end()) return fail(ErrorKind::invalid, it->second);
            if (run_plugin_init) return plugin_init(desc);
            return {};
        };
    }

    static Result<void> plugin_init(const th_plugin_desc &desc) {
        th_host_api no_services{};
        no_services.struct_size = sizeof no_services;
        no_services.abi_major = TH_ABI_MAJOR;
        no_services.abi_minor = TH_ABI_MINOR;
        std::string message;
        th_sink err{&message, [](void *out, const char *data, size_t size) {
                        static_cast<std::string *>(out)->append(data, size);
                    }};
        if (desc.init(&no_services, nullptr, &err) == TH_OK) return {};
        return fail(ErrorKind::invalid, message);
    }
};

// Holds every plugin's init until released: a reload stuck in plugin code.
struct InitGate {
    std::mutex mu;
    std::condition_variable cv;
    std::string entered;  // the file whose init waits
    bool released = false;

    PluginManager::InitPlugin callback() {
        return [this](const th_plugin_desc &, const std::string &file, const std::string &) -> Result<void> {
            std::unique_lock lock(mu);
            entered = file;
            cv.notify_all();
            cv.wait(lock, [&] { return released; });
            return {};
        };
    }
    bool wait_entered(const std::string &file) {
        std::unique_lock lock(mu);
        return cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered == file; });
    }
    void release() {
        {
            std::lock_guard lock(mu);
            released = true;
        }
        cv.notify_all();
    }
};

// What the manager logs, one "level message" line each, while it lives.
class LogCapture {
public:
    LogCapture() : previous_(spdlog::default_logger()) {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
        sink->set_pattern("%l %v");
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("plugin-manager-test", std::move(sink)));
    }
    ~LogCapture() { spdlog::set_default_logger(previous_); }
    LogCapture(const LogCapture &) = delete;
    LogCapture &operator=(const LogCapture &) = delete;

    bool has(const std::string &line) const {
        std::istringstream in(out_.str());
        for (std::string logged; std::getline(in, logged);)
            if (logged == line) return true;
        return false;
    }

private:
    std::ostringstream out_;
    std::shared_ptr<spdlog::logger> previous_;
};

// The log capture goes last: the registry may hold the last reference to a
// generation, whose unloading is logged.
struct Harness {
    LogCapture log;
    PluginFolder folder;
    registry::Registry registry;
    FakeInit init;
    PluginManager manager{PluginManager::Options{.dir = folder.dir}, registry, init.callback()};
};

}  // namespace

TEST_CASE("plugin manager: the first reload adds every file and publishes their tasks") {
    Harness h;
    h.folder.deploy(examples / "demo.so", "demo.so");
    h.folder.deploy(examples / "math.so", "math.so");

    ReloadReport report = h.manager.reload();
    CHECK(joined(report.added) == "demo.so, math.so");
    CHECK(report.replaced.empty());
    CHECK(report.removed.empty());
    CHECK(report.unchanged.empty());
    CHECK(refusals(report).empty());
    CHECK(report.snapshot_version == 1);
    CHECK(h.registry.snapshot()->version == 1);
    CHECK(task_names(h.registry) == united(demo_tasks, math_tasks));

    auto add = h.registry.snapshot()->find("add");
    REQUIRE(add);
    CHECK(add->plugin->file == "math.so");
    CHECK(add->plugin->name == "math");
    CHECK(add->plugin->version == "1.0.0");
    CHECK(std::string(add->desc->name) == "add");
    CHECK(add->tags == std::vector<std::string>{"math"});
    json info = json::parse(add->info_json);
    CHECK(info["name"] == "add");
    CHECK(info["docstring"] == "Add two numbers.");
    CHECK(info["tags"] == json::array({"math"}));
    CHECK(info["plugin"] == json{{"name", "math"}, {"version", "1.0.0"}});
    REQUIRE(info["parameters"].size() == 2);
    CHECK(info["parameters"][0]["name"] == "a");
    CHECK(info["parameters"][0]["required"] == true);
    auto greet_user = h.registry.snapshot()->find("greet_user");
    REQUIRE(greet_user);
    CHECK(greet_user->tags == std::vector<std::string>{"demo", "simple"});
    CHECK(json::parse(greet_user->info_json)["plugin"]["name"] == "demo");

    // Files load in name order, each as its own generation.
    json demo = plugin_entry(h.manager, "demo.so", "active");
    json math = plugin_entry(h.manager, "math.so", "active");
    REQUIRE(demo.is_object());
    REQUIRE(math.is_object());
    CHECK(demo["generation"] == 1);
    CHECK(math["generation"] == add->plugin->generation_number);
    CHECK(math["generation"] == 2);
    CHECK(math["name"] == "math");
    CHECK(math["tasks"] == json::array({"add", "multiply", "multiply_numbers"}));
    CHECK(math["hash"].get<std::string>().size() == 64);
    CHECK(math["jobs_in_flight"] == 0);
    CHECK(math["error"].is_null());
    CHECK(json::parse(h.manager.describe_json()).size() == 2);
    CHECK(h.log.has("info plugin demo.so loaded: demo 1.0.0 (generation 1, 7 tasks)"));
    CHECK(h.log.has("info plugin math.so loaded: math 1.0.0 (generation 2, 3 tasks)"));

    auto counts = h.manager.counts();
    CHECK(counts.active == 2);
    CHECK(counts.refused == 0);
    CHECK(counts.reloads == 1);

    json summary = json::parse(report.to_json());
    CHECK(summary["added"] == json::array({"demo.so", "math.so"}));
    CHECK(summary["unchanged"] == 0);
    CHECK(summary["snapshot_version"] == 1);
}

TEST_CASE("plugin manager: an unchanged folder publishes no new snapshot") {
    Harness h;
    h.folder.deploy(examples / "demo.so", "demo.so");
    REQUIRE(h.manager.reload().snapshot_version == 1);
    auto published = h.registry.snapshot();

    ReloadReport report = h.manager.reload();
    CHECK(joined(report.unchanged) == "demo.so");
    CHECK(report.added.empty());
    CHECK(report.replaced.empty());
    CHECK(report.removed.empty());
    CHECK(refusals(report).empty());
    CHECK(report.snapshot_version == 1);
    CHECK(h.registry.snapshot() == published);

    // The same bytes under a new inode: hashed again, found equal, not loaded.
    h.folder.deploy(examples / "demo.so", "demo.so");
    report = h.manager.reload();
    CHECK(joined(report.unchanged) == "demo.so");
    CHECK(report.replaced.empty());
    CHECK(report.snapshot_version == 1);
    CHECK(h.registry.snapshot() == published);
    CHECK(plugin_entry(h.manager, "demo.so", "active")["generation"] == 1);
    CHECK(h.manager.counts().reloads == 3);
}

TEST_CASE("plugin manager: a replaced generation serves its leases, then is unloaded") {
    Harness h;
    h.folder.deploy(fixtures / "versioned_v1.so", "versioned.so");
    REQUIRE(joined(h.manager.reload().added) == "versioned.so");
    registry::TaskLease lease(h.registry.snapshot()->find("slow_version"));
    REQUIRE(lease);
    CHECK(lease->plugin->version == "1.0.0");

    h.folder.deploy(fixtures / "versioned_v2.so", "versioned.so");
    ReloadReport report = h.manager.reload();
    CHECK(joined(report.replaced) == "versioned.so");
    CHECK(report.added.empty());
    CHECK(refusals(report).empty());
    CHECK(report.snapshot_version == 2);
    auto which = h.registry.snapshot()->find("which_version");
    REQUIRE(which);
    CHECK(which->plugin->version == "2.0.0");
    CHECK(lease->plugin->version == "1.0.0");  // the lease still runs on v1

    json active = plugin_entry(h.manager, "versioned.so", "active");
    json retired = plugin_entry(h.manager, "versioned.so", "retired");
    REQUIRE(active.is_object());
    REQUIRE(retired.is_object());
    CHECK(active["version"] == "2.0.0");
    CHECK(active["generation"] == 2);
    CHECK(retired["version"] == "1.0.0");
    CHECK(retired["generation"] == 1);
    CHECK(retired["jobs_in_flight"] == 1);
    CHECK(h.manager.counts().active == 1);
    const std::string v1_copy = "1-versioned.so";
    CHECK(is_mapped(v1_copy));

    // Released, it is no longer listed, but stays mapped until the loader's
    // next reload unloads it.
    lease.release();
    CHECK(plugin_entry(h.manager, "versioned.so", "retired").is_null());
    CHECK(is_mapped(v1_copy));
    CHECK_FALSE(h.log.has("info plugin versioned.so generation 1 (versioned 1.0.0) unloaded"));

    report = h.manager.reload();
    CHECK(joined(report.unchanged) == "versioned.so");
    CHECK(report.snapshot_version == 2);
    CHECK(h.log.has("info plugin versioned.so generation 1 (versioned 1.0.0) unloaded"));
    CHECK_FALSE(is_mapped(v1_copy));
    CHECK(is_mapped("2-versioned.so"));
}

TEST_CASE("plugin manager: an image dlclose() keeps is never answered for a later version") {
    // Each generation is loaded by its memfd's /proc/self/fd path, and the
    // loader matches loaded images by path: if the fd of an image that stays
    // mapped were closed, the next version could get its number and be
    // answered with the old image.
    Harness h;
    auto answer = [&] {
        auto which = h.registry.snapshot()->find("which_version");
        REQUIRE(which);
        return which->plugin->version;
    };
    h.folder.deploy(fixtures / "nodelete_v7.so", "versioned.so");
    REQUIRE(h.manager.reload().added.size() == 1);
    CHECK(answer() == "7.0.0");
    h.folder.deploy(fixtures / "nodelete_v8.so", "versioned.so");
    REQUIRE(h.manager.reload().replaced.size() == 1);  // version 7 released: unloaded at the next reload
    CHECK(answer() == "8.0.0");
    h.folder.deploy(fixtures / "versioned_v1.so", "versioned.so");
    REQUIRE(h.manager.reload().replaced.size() == 1);
    CHECK(answer() == "1.0.0");
    CHECK(
        h.log.has("warning plugin versioned.so generation 1 (versioned 7.0.0) stays mapped after unloading "
                  "(built without taskhost_add_plugin?); its memory is not returned"));
}

TEST_CASE("plugin manager: removing a file withdraws its tasks") {
    Harness h;
    h.folder.deploy(examples / "demo.so", "demo.so");
    h.folder.deploy(examples / "math.so", "math.so");
    REQUIRE(h.manager.reload().added.size() == 2);

    h.folder.remove("math.so");
    ReloadReport report = h.manager.reload();
    CHECK(joined(report.removed) == "math.so");
    CHECK(joined(report.unchanged) == "demo.so");
    CHECK(report.added.empty());
    CHECK(report.snapshot_version == 2);
    CHECK(task_names(h.registry) == demo_tasks);
    CHECK_FALSE(h.registry.snapshot()->find("add"));
    CHECK(plugin_entry(h.manager, "math.so", "active").is_null());
    CHECK(json::parse(h.manager.describe_json()).size() == 1);
    CHECK(h.manager.counts().active == 1);
    CHECK(h.log.has("info plugin math.so removed: its tasks are withdrawn"));
}

TEST_CASE("plugin manager: each broken fixture is refused with its reason") {
    Harness h;
    h.init.run_plugin_init = true;
    h.folder.deploy(examples / "demo.so", "demo.so");
    h.folder.deploy(fixtures / "dup_task.so", "dup_task.so");
    for (const auto &b : broken) h.folder.deploy(fixtures / b.fixture, b.fixture);

    ReloadReport report = h.manager.reload();
    CHECK(joined(report.added) == "demo.so");
    CHECK(report.snapshot_version == 1);
    CHECK(task_names(h.registry) == demo_tasks);
    CHECK(h.registry.snapshot()->find("hello")->plugin->file == "demo.so");

    // Refused while loading, in file order; then refused for a name clash.
    REQUIRE(report.refused.size() == broken.size() + 1);
    for (size_t i = 0; i < broken.size(); ++i) {
        const auto &refusal = report.refused[i];
        CAPTURE(refusal.reason);
        CHECK(refusal.file == broken[i].fixture);
        CHECK(matches(refusal.reason, broken[i]));
        CHECK_FALSE(refusal.kept_previous);
        CHECK(h.log.has("error plugin " + refusal.file + " refused: " + refusal.reason));

        json entry = plugin_entry(h.manager, refusal.file, "refused");
        REQUIRE(entry.is_object());
        CHECK(entry["error"] == refusal.reason);
        CHECK(entry["tasks"] == json::array());
        CHECK(entry["refused_hash"] == entry["hash"]);
        CHECK(entry["error_at"].is_string());
    }
    CHECK(report.refused.back().file == "dup_task.so");
    CHECK(report.refused.back().reason == "duplicate task name 'hello': already provided by demo.so");
    CHECK(plugin_entry(h.manager, "dup_task.so", "refused")["error"] == report.refused.back().reason);

    auto counts = h.manager.counts();
    CHECK(counts.active == 1);
    CHECK(counts.refused == broken.size() + 1);
}

TEST_CASE("plugin manager: a plugin filled in by position against ABI 1.0 reads right") {
    Harness h;
    h.folder.deploy(fixtures / "abi_1_0.so", "abi_1_0.so");
    ReloadReport report = h.manager.reload();
    CHECK(refusals(report).empty());
    auto task = h.registry.snapshot()->find("abi10_echo");
    REQUIRE(task);
    CHECK(task->desc->default_timeout_s == 2.5);
    REQUIRE((task->desc->validate != nullptr));
    std::string why;
    th_sink err{&why, [](void *o, const char *d, size_t n) { static_cast<std::string *>(o)->append(d, n); }};
    const std::string refused = R"({"x": "refuse"})";
    CHECK(task->desc->validate(refused.data(), refused.size(), &err) == TH_INVALID);
    CHECK(why == "abi10_echo refuses 'refuse'");
    CHECK(json::parse(task->info_json)["timeout_s"] == 2.5);
}

TEST_CASE("plugin manager: plugins built with smaller or larger descriptors load in the host's layout") {
    Harness h;
    h.folder.deploy(fixtures / "abi_older.so", "abi_older.so");
    h.folder.deploy(fixtures / "abi_newer.so", "abi_newer.so");
    ReloadReport report = h.manager.reload();
    CHECK(refusals(report).empty());
    CHECK(joined(report.added) == "abi_newer.so, abi_older.so");
    CHECK(task_names(h.registry) == std::set<std::string>{"newer_echo", "newer_timeout", "older_echo", "older_hello"});

    // Older: no validate, no default timeout, no parameter schemas.
    auto older_echo = h.registry.snapshot()->find("older_echo");
    REQUIRE(older_echo);
    CHECK(older_echo->desc->struct_size == sizeof(th_task_desc));
    CHECK((older_echo->desc->validate == nullptr));
    CHECK(older_echo->desc->default_timeout_s == 0);
    CHECK(older_echo->tags == std::vector<std::string>{"abi", "older"});
    REQUIRE(older_echo->desc->param_count == 2);
    CHECK(older_echo->desc->params[1].schema_json == nullptr);
    json info = json::parse(older_echo->info_json);
    CHECK(info["parameters"] == json::parse(R"([
        {"name": "a", "annotation": "int", "default": null, "required": true, "injected": false},
        {"name": "b", "annotation": "string", "default": "bee", "required": false, "injected": false}])"));
    CHECK(info["parameters_schema"]["required"] == json::array({"a"}));
    CHECK(info["timeout_s"].is_null());
    auto older_hello = h.registry.snapshot()->find("older_hello");
    REQUIRE(older_hello);
    CHECK(json::parse(older_hello->info_json)["docstring"] == "Says hello.");
    json older = plugin_entry(h.manager, "abi_older.so", "active");
    CHECK(older["build_info"] == "older SDK fixture");
    CHECK(older["tasks"] == json::array({"older_echo", "older_hello"}));

    // Newer: its extra members ignored, the ones the host knows read right.
    auto newer_echo = h.registry.snapshot()->find("newer_echo");
    REQUIRE(newer_echo);
    CHECK((newer_echo->desc->validate != nullptr));
    REQUIRE(newer_echo->desc->param_count == 2);
    CHECK(std::string(newer_echo->desc->params[1].name) == "y");
    CHECK(std::string(newer_echo->desc->params[1].schema_json) == R"({"type":"string","default":"why"})");
    auto newer_timeout = h.registry.snapshot()->find("newer_timeout");
    REQUIRE(newer_timeout);
    CHECK((newer_timeout->desc->validate == nullptr));
    CHECK(json::parse(newer_timeout->info_json)["timeout_s"] == 7.5);
    CHECK(plugin_entry(h.manager, "abi_newer.so", "active")["build_info"] == "newer SDK fixture");
}

TEST_CASE("plugin manager: a refused replacement leaves the previous generation serving") {
    Harness h;
    h.init.run_plugin_init = true;
    h.folder.deploy(fixtures / "versioned_v1.so", "versioned.so");
    REQUIRE(h.manager.reload().snapshot_version == 1);
    auto published = h.registry.snapshot();

    for (const auto &b : broken) {
        CAPTURE(b.fixture);
        h.folder.deploy(fixtures / b.fixture, "versioned.so");
        ReloadReport report = h.manager.reload();
        REQUIRE(report.refused.size() == 1);
        CHECK(report.refused[0].file == "versioned.so");
        CHECK(matches(report.refused[0].reason, b));
        CHECK(report.refused[0].kept_previous);
        CHECK(h.log.has("error plugin versioned.so refused: " + report.refused[0].reason +
                        " (the previous version keeps serving)"));
        CHECK(report.replaced.empty());
        CHECK(report.snapshot_version == 1);
        CHECK(h.registry.snapshot() == published);

        json entry = plugin_entry(h.manager, "versioned.so", "active");
        REQUIRE(entry.is_object());
        CHECK(entry["version"] == "1.0.0");
        CHECK(entry["error"] == report.refused[0].reason);
        CHECK(entry["refused_hash"] != entry["hash"]);
        CHECK(h.manager.counts().active == 1);
        CHECK(h.manager.counts().refused == 1);
    }

    h.folder.deploy(fixtures / "versioned_v2.so", "versioned.so");
    ReloadReport report = h.manager.reload();
    CHECK(joined(report.replaced) == "versioned.so");
    CHECK(report.snapshot_version == 2);
    CHECK(h.registry.snapshot()->find("which_version")->plugin->version == "2.0.0");
    CHECK(plugin_entry(h.manager, "versioned.so", "active")["error"].is_null());
    CHECK(h.manager.counts().refused == 0);
}

TEST_CASE("plugin manager: serving plugins keep their task names; new files claim theirs in file order") {
    Harness h;
    SUBCASE("a file added later cannot take a serving plugin's name") {
        h.folder.deploy(examples / "demo.so", "demo.so");
        REQUIRE(joined(h.manager.reload().added) == "demo.so");
        h.folder.deploy(fixtures / "dup_task.so", "a_dup.so");
        ReloadReport report = h.manager.reload();
        CHECK(report.added.empty());
        CHECK(refusals(report) == "a_dup.so: duplicate task name 'hello': already provided by demo.so\n");
        CHECK(report.snapshot_version == 1);
        CHECK(h.registry.snapshot()->find("hello")->plugin->name == "demo");
    }
    SUBCASE("files added together: the first in name order wins") {
        h.folder.deploy(examples / "demo.so", "demo.so");
        h.folder.deploy(fixtures / "dup_task.so", "a_dup.so");
        ReloadReport report = h.manager.reload();
        CHECK(joined(report.added) == "a_dup.so");
        CHECK(refusals(report) == "demo.so: duplicate task name 'hello': already provided by a_dup.so\n");
        CHECK(h.registry.snapshot()->find("hello")->plugin->name == "dup");
        CHECK(task_names(h.registry) == std::set<std::string>{"hello"});
    }
}

TEST_CASE("plugin manager: a file refused for a name clash is retried until its name is free") {
    Harness h;
    h.folder.deploy(examples / "demo.so", "demo.so");
    h.folder.deploy(fixtures / "dup_task.so", "dup_task.so");
    const std::string clash = "dup_task.so: duplicate task name 'hello': already provided by demo.so\n";
    ReloadReport report = h.manager.reload();
    CHECK(joined(report.added) == "demo.so");
    CHECK(refusals(report) == clash);

    // Unchanged, but examined again: the clash may have gone.
    report = h.manager.reload();
    CHECK(joined(report.unchanged) == "demo.so");
    CHECK(refusals(report) == clash);
    CHECK(report.snapshot_version == 1);

    h.folder.remove("demo.so");
    report = h.manager.reload();
    CHECK(joined(report.removed) == "demo.so");
    CHECK(joined(report.added) == "dup_task.so");
    CHECK(refusals(report).empty());
    CHECK(report.snapshot_version == 2);
    CHECK(h.registry.snapshot()->find("hello")->plugin->name == "dup");
    CHECK(h.manager.counts().active == 1);
    CHECK(h.manager.counts().refused == 0);
}

TEST_CASE("plugin manager: a refused replacement hands its names back, refusing the file that took them") {
    Harness h;
    h.folder.deploy(fixtures / "versioned_v1.so", "a.so");
    h.folder.deploy(examples / "demo.so", "c.so");
    REQUIRE(joined(h.manager.reload().added) == "a.so, c.so");

    // a.so's replacement clashes with c.so, so a.so's v1 keeps which_version,
    // which b.so could only claim while a.so was being replaced.
    h.folder.deploy(fixtures / "dup_task.so", "a.so");
    h.folder.deploy(fixtures / "versioned_v2.so", "b.so");
    ReloadReport report = h.manager.reload();
    CHECK(refusals(report) ==
          "a.so: duplicate task name 'hello': already provided by c.so (kept previous)\n"
          "b.so: duplicate task name 'which_version': already provided by a.so\n");
    CHECK(report.added.empty());
    CHECK(report.replaced.empty());
    CHECK(joined(report.unchanged) == "c.so");
    CHECK(report.snapshot_version == 1);
    auto which = h.registry.snapshot()->find("which_version");
    CHECK(which->plugin->file == "a.so");
    CHECK(which->plugin->version == "1.0.0");
    CHECK(h.manager.counts().active == 2);
    CHECK(h.manager.counts().refused == 2);
}

TEST_CASE("plugin manager: init runs once per loaded generation; its refusal refuses the plugin") {
    Harness h;
    h.init.refusals["types.so"] = "no database here";
    h.folder.deploy(examples / "demo.so", "demo.so");  // declares no init
    h.folder.deploy(examples / "storage.so", "storage.so");
    h.folder.deploy(fixtures / "types.so", "types.so");

    ReloadReport report = h.manager.reload();
    REQUIRE(h.init.calls.size() == 2);
    CHECK(h.init.calls[0].file == "storage.so");
    CHECK(h.init.calls[0].plugin == "storage");
    CHECK(h.init.calls[1].file == "types.so");
    CHECK(h.init.calls[1].plugin == "types");
    CHECK(joined(report.added) == "demo.so, storage.so");
    CHECK(refusals(report) == "types.so: init failed: no database here\n");
    CHECK_FALSE(h.registry.snapshot()->find("echo_types"));
    CHECK(plugin_entry(h.manager, "types.so", "refused")["error"] == "init failed: no database here");

    // Nothing loaded, nothing initialised; a refused file waits for new content.
    report = h.manager.reload();
    CHECK(joined(report.unchanged) == "demo.so, storage.so, types.so");
    CHECK(h.init.calls.size() == 2);

    // Another plugin under storage.so: its init is told the file name.
    h.folder.deploy(fixtures / "types.so", "storage.so");
    report = h.manager.reload();
    CHECK(joined(report.replaced) == "storage.so");
    REQUIRE(h.init.calls.size() == 3);
    CHECK(h.init.calls[2].file == "storage.so");
    CHECK(h.init.calls[2].plugin == "types");
    CHECK(h.registry.snapshot()->find("echo_types")->plugin->file == "storage.so");
    CHECK_FALSE(h.registry.snapshot()->find("store_result"));
    CHECK(h.manager.counts().active == 2);
    CHECK(h.manager.counts().refused == 1);
}

TEST_CASE("plugin manager: counts, problems, the plugin list and the progress do not wait for a reload") {
    LogCapture log;
    PluginFolder folder;
    registry::Registry registry;
    InitGate gate;
    PluginManager manager{PluginManager::Options{.dir = folder.dir}, registry, gate.callback()};
    CHECK(manager.counts().reloads == 0);  // before any reload: an empty view
    CHECK(manager.describe_json() == "[]");

    folder.deploy(examples / "demo.so", "demo.so");  // declares no init
    folder.deploy(fixtures / "wrong_abi.so", "wrong_abi.so");
    gate.release();
    REQUIRE(manager.reload().added.size() == 1);
    gate.released = false;  // no reload runs now

    // storage.so declares an init: the reload holds the loader until released.
    folder.deploy(examples / "storage.so", "storage.so");
    std::thread reloading([&] { manager.reload(); });
    const bool entered = gate.wait_entered("storage.so");
    auto readers = std::async(std::launch::async, [&] {
        return std::make_tuple(manager.counts(), manager.describe_json(), manager.problems(),
                               manager.reload_progress());
    });
    const bool prompt = readers.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    gate.release();
    reloading.join();
    REQUIRE(entered);
    REQUIRE(prompt);

    // What the last finished reload left.
    const auto [counts, described, problems, progress] = readers.get();
    REQUIRE(progress.running);
    CHECK(progress.running->loading == "storage.so");
    REQUIRE(progress.last);  // the first reload, which loaded demo.so and refused wrong_abi.so
    CHECK_FALSE(progress.last->slowest_file.empty());
    CHECK(counts.reloads == 1);
    CHECK(counts.active == 1);
    CHECK(counts.refused == 1);
    const json list = json::parse(described);
    REQUIRE(list.size() == 2);
    CHECK(list[0]["file"] == "demo.so");
    CHECK(list[1]["file"] == "wrong_abi.so");
    CHECK(joined(problems) ==
          "wrong_abi.so was refused: ABI mismatch: plugin built for ABI 99.0, host supports ABI 1.x");

    // Published once the reload is over.
    CHECK(manager.counts().reloads == 2);
    CHECK(manager.counts().active == 2);
    CHECK(plugin_entry(manager, "storage.so", "active").is_object());
    const PluginManager::ReloadProgress after = manager.reload_progress();
    CHECK_FALSE(after.running);
    REQUIRE(after.last);
    CHECK(after.last->slowest_file == "storage.so");  // the only file loaded
    CHECK(after.last->seconds >= after.last->slowest_s);
}

// ---- process isolation: plugins the host never maps -----------------------------

namespace {

// Stands in for the probe child: reports the descriptor of the built plugin
// of the same file name, mapped from its build folder (never the manager's
// sealed image, so /proc/self/maps tells the two apart). A file listed in
// `reports` reports that text instead.
struct FakeProbe {
    std::map<std::string, std::string> reports;  // file -> "descriptor" line's JSON
    int calls = 0;

    std::function<plugins::ProbeResult(const UniqueFd &, const std::string &)> callback() {
        return [this](const UniqueFd &, const std::string &file) -> plugins::ProbeResult {
            ++calls;
            if (auto it = reports.find(file); it != reports.end()) return {std::nullopt, it->second};
            const fs::path source = fs::exists(examples / file) ? examples / file : fixtures / file;
            void *handle = ::dlopen(source.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (handle == nullptr) return {plugins::ProbeFailure{::dlerror()}, {}};
            auto entry = reinterpret_cast<th_plugin_entry_fn>(::dlsym(handle, TH_PLUGIN_ENTRY_NAME));
            auto read = plugins::read_descriptor(entry());
            plugins::ProbeResult result;
            if (read) result.descriptor_json = plugins::descriptor_to_json(**read);
            else result.failure = plugins::ProbeFailure{read.error().message};
            read = fail(ErrorKind::internal, "released");  // before its strings are unmapped
            ::dlclose(handle);
            return result;
        };
    }
};

std::map<std::string, std::shared_ptr<const registry::Task>, std::less<>> tasks_of(const registry::Registry &r) {
    return r.snapshot()->tasks;
}

// describe_json() without what differs from one load to the next.
json comparable(const PluginManager &manager) {
    json list = json::parse(manager.describe_json());
    for (auto &e : list) e.erase("loaded_at");
    return list;
}

}  // namespace

TEST_CASE("plugin manager: a plugin that runs out of process is served from the probe's descriptor, never mapped") {
    LogCapture log;
    PluginFolder folder;
    for (const char *file : {"demo.so", "math.so", "storage.so"}) folder.deploy(examples / file, file);
    registry::Registry registry;
    FakeInit init;
    FakeProbe probe;
    PluginManager::Options options{.dir = folder.dir};
    options.probe = probe.callback();
    options.in_process = [](const std::string &plugin) { return plugin == "math"; };
    auto manager = std::make_unique<PluginManager>(std::move(options), registry, init.callback());

    ReloadReport report = manager->reload();
    CHECK(refusals(report) == "");
    CHECK(joined(report.added) == "demo.so, math.so, storage.so");
    CHECK(probe.calls == 3);
    // Generations by file order: only math's image is in this process.
    CHECK_FALSE(is_mapped("1-demo.so"));
    CHECK(is_mapped("2-math.so"));
    CHECK_FALSE(is_mapped("3-storage.so"));
    CHECK(init.calls.empty());  // storage's init is left to its workers; math declares none
    auto remote_tasks = tasks_of(registry);
    REQUIRE(remote_tasks.count("greet_user"));
    REQUIRE(remote_tasks.count("add"));
    const registry::PluginInstance &demo = *remote_tasks.at("greet_user")->plugin;
    CHECK_FALSE(demo.in_process);
    CHECK(demo.image_fd >= 0);
    CHECK((remote_tasks.at("greet_user")->desc->invoke == nullptr));
    CHECK(remote_tasks.at("add")->plugin->in_process);
    CHECK(remote_tasks.at("add")->plugin->image_fd >= 0);
    const json remote_list = comparable(*manager);

    // The same folder loaded the usual way answers the same, task by task.
    {
        PluginFolder same;
        for (const char *file : {"demo.so", "math.so", "storage.so"}) same.deploy(examples / file, file);
        registry::Registry local_registry;
        FakeInit local_init;
        PluginManager local{PluginManager::Options{.dir = same.dir}, local_registry, local_init.callback()};
        REQUIRE(local.reload().added.size() == 3);
        CHECK(local_init.calls.size() == 1);  // storage's
        const auto local_tasks = tasks_of(local_registry);
        REQUIRE(local_tasks.size() == remote_tasks.size());
        for (const auto &entry : local_tasks) {
            const std::string &name = entry.first;
            const auto &task = entry.second;
            CAPTURE(name);
            REQUIRE(remote_tasks.count(name));
            const registry::Task &remote = *remote_tasks.at(name);
            CHECK(remote.info_json == task->info_json);
            CHECK(remote.has_validate == task->has_validate);
            CHECK(remote.tags == task->tags);
            CHECK((remote.params_schema == nullptr) == (task->params_schema == nullptr));
            CHECK(remote.plugin->tasks_json == task->plugin->tasks_json);
        }
        CHECK(remote_list == comparable(local));
    }

    // Withdrawn, a remote generation is released without a call into it.
    remote_tasks.clear();  // which held it
    folder.remove("demo.so");
    report = manager->reload();
    CHECK(joined(report.removed) == "demo.so");
    manager->reload();  // unloads what the last one released
    CHECK(log.has("info plugin demo.so generation 1 (demo 1.0.0) released"));
    CHECK_FALSE(is_mapped("1-demo.so"));
}

TEST_CASE("plugin manager: out of process, a plugin whose probe reports no usable descriptor is refused") {
    LogCapture log;
    PluginFolder folder;
    for (const char *file : {"demo.so", "math.so", "data.so"}) folder.deploy(examples / file, file);
    registry::Registry registry;
    FakeInit init;
    FakeProbe probe;
    probe.reports["demo.so"] = "";
    probe.reports["math.so"] = R"({"name": "math")";
    PluginManager::Options options{.dir = folder.dir};
    options.probe = probe.callback();
    options.in_process = [](const std::string &) { return false; };
    PluginManager manager(std::move(options), registry, init.callback());

    const ReloadReport report = manager.reload();
    CHECK(refusals(report) ==
          "demo.so: the trial process reported no descriptor\n"
          "math.so: the trial process reported an unusable descriptor: it is not JSON\n");
    CHECK(joined(report.added) == "data.so");
    for (const char *image : {"1-demo.so", "2-math.so", "3-data.so"}) CHECK_FALSE(is_mapped(image));
}

TEST_CASE("plugin manager: out of process without a probe, no plugin can be described, and none is mapped") {
    LogCapture log;
    PluginFolder folder;
    folder.deploy(examples / "demo.so", "demo.so");
    registry::Registry registry;
    FakeInit init;
    PluginManager::Options options{.dir = folder.dir};
    options.in_process = [](const std::string &) { return true; };  // even then: its name is unknown
    PluginManager manager(std::move(options), registry, init.callback());

    ReloadReport report = manager.reload();
    CHECK(refusals(report) ==
          "demo.so: cannot tell whether it runs in the host or in worker processes without mapping it: its "
          "descriptor comes from the trial process, which is off\n");
    CHECK_FALSE(is_mapped("1-demo.so"));
    CHECK(registry.snapshot()->tasks.empty());
    // The configuration's fault, not the file's: looked at again next time.
    report = manager.reload();
    CHECK(report.refused.size() == 1);
    CHECK(report.unchanged.empty());
}
