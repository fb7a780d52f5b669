#include "app/plugin_tools.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <taskhost/abi.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "exec/in_process.hpp"
#include "plugins/manager.hpp"
#include "plugins/probe.hpp"
#include "registry/registry.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace taskhost::app {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- plugin new ---------------------------------------------------------------

// The scaffold, with @NAME@ for the plugin's name. One task, one test file,
// and the commands to build, test, check and deploy it.
constexpr const char *kCMakeLists = R"(cmake_minimum_required(VERSION 3.25)
project(@NAME@ VERSION 0.1.0 LANGUAGES CXX)

# The taskhost SDK (Debian: taskhost-dev; or `cmake --install` of a taskhost
# build, with -DCMAKE_PREFIX_PATH=<its prefix>).
find_package(taskhost 1 REQUIRED)
taskhost_add_plugin(@NAME@ SOURCES src/@NAME@.cpp)

# Unit tests of the tasks, in-process, with the SDK's harness and doctest
# (Debian: doctest-dev).
enable_testing()
find_package(doctest REQUIRED)
add_executable(@NAME@_tests tests/@NAME@_tests.cpp)
target_link_libraries(@NAME@_tests PRIVATE taskhost::testing doctest::doctest)
target_compile_definitions(@NAME@_tests PRIVATE PLUGIN_FILE="$<TARGET_FILE:@NAME@>")
add_dependencies(@NAME@_tests @NAME@)
add_test(NAME @NAME@_tests COMMAND @NAME@_tests)
)";

constexpr const char *kSource = R"(// @NAME@: a taskhost plugin. Each task is an ordinary function; the
// TASKHOST_PLUGIN declaration below names it, documents it and names its
// parameters (see taskhost/sdk.hpp for every parameter type and service).
#include <taskhost/sdk.hpp>

#include <stdexcept>
#include <string>

using taskhost::json;
using namespace taskhost;

namespace {

json greet(Context &context, std::string name, int times) {
    if (times < 1 || times > 100) throw std::invalid_argument("times must be between 1 and 100");
    std::string message;
    for (int i = 0; i < times; ++i) {
        if (context.cancelled()) throw Cancelled();
        message += (i == 0 ? "" : " ") + ("Hello, " + name + "!");
        context.progress(static_cast<double>(i + 1) / times);
    }
    return {{"message", message}};
}

}  // namespace

TASKHOST_PLUGIN("@NAME@", "0.1.0",
    task("@NAME@_greet", greet)
        .doc("Greets someone, as many times as asked.")
        .tags({"@NAME@"})
        .param("name", "World")
        .param("times", 1));
)";

constexpr const char *kTest = R"(// Unit tests of @NAME@'s tasks: the built plugin, loaded in-process with fake
// host services (taskhost/testing.hpp). Run with `ctest --test-dir build`.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <taskhost/testing.hpp>

using taskhost::testing::Plugin;
using taskhost::testing::json;

TEST_CASE("@NAME@_greet greets as many times as asked") {
    Plugin plugin = Plugin::load(PLUGIN_FILE);
    const auto run = plugin.call("@NAME@_greet", {{"name", "Ada"}, {"times", 2}});
    REQUIRE(run.ok());
    CHECK(*run.result == json{{"message", "Hello, Ada! Hello, Ada!"}});
    CHECK(run.progress.size() == 2);
}

TEST_CASE("params of the wrong type are refused before the task runs") {
    Plugin plugin = Plugin::load(PLUGIN_FILE);
    const auto run = plugin.call("@NAME@_greet", {{"times", "twice"}});
    REQUIRE(run.invalid_params);
    CHECK(run.invalid_params->find("times") != std::string::npos);
}

TEST_CASE("what the task throws is its error") {
    Plugin plugin = Plugin::load(PLUGIN_FILE);
    const auto run = plugin.call("@NAME@_greet", {{"times", 0}});
    REQUIRE(run.error);
    CHECK(run.error->type == "std::invalid_argument");
    CHECK(run.error->message == "times must be between 1 and 100");
}
)";

constexpr const char *kReadme = R"(# @NAME@

A taskhost plugin.

```sh
cmake -B build && cmake --build build     # builds build/@NAME@.so
ctest --test-dir build                    # its unit tests (taskhost/testing.hpp)
taskhost plugin check build/@NAME@.so     # would a host load it? prints its tasks
cp build/@NAME@.so /var/lib/taskhost/plugins/ && systemctl reload taskhost
```
)";

std::string with_name(std::string text, const std::string &name) {
    for (auto at = text.find("@NAME@"); at != std::string::npos; at = text.find("@NAME@", at + name.size()))
        text.replace(at, 6, name);
    return text;
}

int new_project(const std::string &name, const fs::path &parent) {
    // A C++ identifier and a file name at once: it names the target, the
    // .so and, with a suffix, the task.
    if (!std::regex_match(name, std::regex("[A-Za-z][A-Za-z0-9_]{0,63}"))) {
        std::cerr << "taskhost plugin new: '" << name
                  << "' is not a usable plugin name: a letter, then letters, digits or '_' (at most 64)\n";
        return 2;
    }
    const fs::path dir = parent / name;
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
        std::cerr << "taskhost plugin new: " << dir.string() << " exists and is not empty; nothing written\n";
        return 1;
    }
    const std::vector<std::pair<fs::path, const char *>> files = {{"CMakeLists.txt", kCMakeLists},
                                                                  {fs::path("src") / (name + ".cpp"), kSource},
                                                                  {fs::path("tests") / (name + "_tests.cpp"), kTest},
                                                                  {"README.md", kReadme},
                                                                  {".gitignore", "/build/\n"}};
    for (const auto &[file, text] : files) {
        const fs::path path = dir / file;
        fs::create_directories(path.parent_path(), ec);
        std::ofstream out(path, std::ios::binary);
        out << with_name(text, name);
        if (!out.flush()) {
            std::cerr << "taskhost plugin new: cannot write " << path.string() << ": " << std::strerror(errno) << "\n";
            return 1;
        }
    }
    std::cout << "created " << dir.string() << "/ with CMakeLists.txt, src/" << name << ".cpp, tests/" << name
              << "_tests.cpp, README.md\n"
              << "next: cd " << dir.string() << " && cmake -B build && cmake --build build && ctest --test-dir build\n";
    return 0;
}

// ---- plugin check -------------------------------------------------------------

// A private folder of our own, removed when done.
class ScratchFolder {
public:
    ScratchFolder() {
        std::string pattern = (fs::temp_directory_path() / "taskhost-check-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a scratch folder");
        path_ = pattern;
    }
    ~ScratchFolder() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    ScratchFolder(const ScratchFolder &) = delete;
    ScratchFolder &operator=(const ScratchFolder &) = delete;
    const fs::path &path() const { return path_; }

private:
    fs::path path_;
};

// One file through the host's loader: alone in the plugins folder `folder`,
// with the probe child, init on a scratch in-memory database.
json check_file(const std::string &file, double timeout_s, const fs::path &folder) {
    json verdict{{"file", file}};
    auto refuse = [&](std::string reason) {
        verdict["verdict"] = "refused";
        verdict["reasons"] = json::array({std::move(reason)});
        return verdict;
    };
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return refuse("no such file");
    const std::string name = fs::path(file).filename().string();
    if (fs::path(name).extension() != ".so")
        return refuse("the host loads only files whose name ends in .so; this one would be ignored");

    const fs::path copy = folder / name;
    if (!fs::copy_file(file, copy, ec)) return refuse("cannot read it: " + ec.message());
    fs::permissions(copy, fs::status(file).permissions(), ec);  // a group-writable file is refused as in the host

    store::SqliteStore scratch(store::SqliteStore::Options{});
    exec::InProcessExecutor::Options one_worker;
    one_worker.workers = 1;
    exec::InProcessExecutor executor(scratch, one_worker);
    registry::Registry registry;
    plugins::PluginManager::Options options{folder, false, nullptr};
    const plugins::ProbeOptions probe{"/proc/self/exe",
                                      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000))};
    options.probe = [probe](const UniqueFd &image, const std::string &f) {
        return plugins::probe_in_child(probe, image, f);
    };
    plugins::PluginManager manager(std::move(options), registry,
                                   [&executor](const th_plugin_desc &desc, const std::string &f, const std::string &hash) {
                                       return executor.run_init(desc, f, hash);
                                   });
    const plugins::ReloadReport report = manager.reload();
    if (!report.refused.empty()) {
        verdict["verdict"] = "refused";
        verdict["reasons"] = json::array();
        for (const auto &r : report.refused) verdict["reasons"].push_back(r.reason);
        return verdict;
    }
    if (report.added.empty()) return refuse("the host did not load it (see the messages above)");
    verdict["verdict"] = "ok";
    const json described = json::parse(manager.describe_json());
    if (!described.empty()) {
        verdict["plugin"] = described[0];
        for (const char *serving_only : {"error", "generation", "jobs_in_flight", "loaded_at", "state"})
            verdict["plugin"].erase(serving_only);
    }
    verdict["tasks"] = json::array();
    for (const auto &[task_name, task] : registry.snapshot()->tasks) verdict["tasks"].push_back(json::parse(task->info_json));
    return verdict;
}

// check_file() in a child process of its own: after the trial child, the
// loader maps the plugin and runs its init once more, as a host does, and a
// plugin that hangs or crashes only then must not hang or kill the checker.
json check_in_child(const std::string &file, double timeout_s) {
    const auto refused = [&](std::string reason) {
        return json{{"file", file}, {"verdict", "refused"}, {"reasons", json::array({std::move(reason)})}};
    };
    ScratchFolder folder;  // removed by this process, whatever becomes of the child
    int pipe[2];
    if (::pipe2(pipe, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::cout.flush();
    std::cerr.flush();
    const pid_t child = ::fork();
    if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (child == 0) {
        ::close(pipe[0]);
        std::string text;
        try {
            text = check_file(file, timeout_s, folder.path()).dump();
        } catch (const std::exception &e) {
            text = refused(e.what()).dump();
        }
        for (size_t done = 0; done < text.size();) {
            const ssize_t n = ::write(pipe[1], text.data() + done, text.size() - done);
            if (n <= 0) break;
            done += static_cast<size_t>(n);
        }
        ::_exit(0);  // no destructors: the folder is the parent's to remove
    }
    ::close(pipe[1]);
    // The trial child has timeout_s; init, run again by the loader, as long.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(2 * timeout_s + 5);
    std::string text;
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd readable{pipe[0], POLLIN, 0};
        if (::poll(&readable, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
        char buf[4096];
        const ssize_t n = ::read(pipe[0], buf, sizeof buf);
        if (n == 0) break;
        if (n > 0) text.append(buf, static_cast<size_t>(n));
        else if (errno != EINTR && errno != EAGAIN) break;
    }
    ::close(pipe[0]);
    if (timed_out) ::kill(child, SIGKILL);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out)
        return refused("the host's loader did not finish within " + std::to_string(static_cast<int64_t>(2 * timeout_s + 5)) +
                       " s (after the trial child passed, it maps the plugin and runs its init again)");
    if (WIFSIGNALED(status)) {
        const char *name = ::sigabbrev_np(WTERMSIG(status));
        return refused(std::string("crashed in the host's loader after the trial child passed: SIG") +
                       (name != nullptr ? name : "?") + " (signal " + std::to_string(WTERMSIG(status)) + ")");
    }
    const json verdict = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (verdict.is_discarded())
        return refused("the host's loader ended without a verdict (exit status " +
                       std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
    return verdict;
}

int check(const std::vector<std::string> &files, double timeout_s, bool quiet) {
    json verdicts = json::array();
    bool all_ok = true;
    for (const std::string &file : files) {
        json verdict;
        try {
            verdict = check_in_child(file, timeout_s);
        } catch (const std::exception &e) {
            verdict = {{"file", file}, {"verdict", "refused"}, {"reasons", json::array({e.what()})}};
        }
        if (verdict["verdict"] != "ok") {
            all_ok = false;
            for (const auto &reason : verdict["reasons"])
                std::cerr << file << ": would be refused: " << reason.get<std::string>() << "\n";
        } else {
            std::cerr << file << ": ok, " << verdict["tasks"].size() << " task(s)\n";
        }
        verdicts.push_back(std::move(verdict));
    }
    if (!quiet) std::cout << (files.size() == 1 ? verdicts[0] : verdicts).dump(2) << "\n";
    return all_ok ? 0 : 1;
}

}  // namespace

bool is_plugin_command(int argc, char **argv) { return argc >= 2 && std::strcmp(argv[1], "plugin") == 0; }

int run_plugin_command(int argc, char **argv) {
    CLI::App app{"taskhost plugin: tools for plugin authors"};
    app.name("taskhost plugin");
    app.require_subcommand(1);

    std::string name;
    std::string parent = ".";
    CLI::App *make = app.add_subcommand("new", "Write a ready-to-build out-of-tree plugin project into DIR/NAME");
    make->add_option("NAME", name, "Plugin name: a letter, then letters, digits or '_'")->required();
    make->add_option("--dir", parent, "Folder to create the project in")->capture_default_str();

    std::vector<std::string> files;
    double timeout_s = 10;
    bool quiet = false;
    CLI::App *check_cmd = app.add_subcommand(
        "check",
        "Load plugin files offline exactly as a host would (a trial child process, then the loader, with init on a "
        "scratch in-memory database); print each one's TaskInfo JSON, or why the host would refuse it. Exit "
        "status 0 if every file would load, 1 otherwise");
    check_cmd->add_option("FILE", files, "Plugin .so files")->required();
    check_cmd->add_option("--timeout-s", timeout_s, "Seconds the trial child may take to load and init the plugin")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    check_cmd->add_flag("--quiet,-q", quiet, "Print no JSON: the exit status and one line per file on stderr");

    try {
        app.parse(argc - 1, argv + 1);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    // The loader's refusals are said once, by check(); anything worse than
    // a refusal still reaches stderr.
    spdlog::set_default_logger(spdlog::stderr_color_mt("taskhost"));
    spdlog::set_level(spdlog::level::critical);
    spdlog::set_pattern("%^%l%$ %v");
    if (*make) return new_project(name, parent);
    return check(files, timeout_s, quiet);
}

}  // namespace taskhost::app
