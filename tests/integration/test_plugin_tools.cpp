// `taskhost plugin check` and `taskhost plugin new`, run as an author runs
// them: the real binary, its exit status, its stdout and stderr.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_util.hpp"

using namespace th_test;

namespace {

struct Ran {
    int status = -1;
    std::string out;  // stdout
    std::string err;  // stderr
};

// Runs `taskhost <args>` (bounded by `timeout 60`).
Ran run_taskhost(const std::string &args) {
    TempDir tmp;
    const fs::path err_file = tmp / "stderr";
    const std::string cmd = "timeout 60 " + std::string(TASKHOST_BINARY) + " " + args + " 2>" + err_file.string();
    FILE *p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    Ran ran;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) ran.out.append(buf, n);
    const int status = ::pclose(p);
    ran.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err_file);
    std::ostringstream text;
    text << in.rdbuf();
    ran.err = text.str();
    return ran;
}

}  // namespace

TEST_CASE("plugin check: a good plugin gives the TaskInfo a host serves, exit 0") {
    const Ran ran = run_taskhost("plugin check " + example_plugin("demo.so").string());
    CHECK(ran.status == 0);
    const json verdict = json::parse(ran.out);
    CHECK(verdict["verdict"] == "ok");
    CHECK(verdict["plugin"]["name"] == "demo");
    CHECK(verdict["plugin"]["version"] == "1.0.0");
    CHECK(verdict["plugin"]["file"] == "demo.so");
    REQUIRE(verdict["tasks"].size() == 7);
    CHECK_CONTAINS(ran.err, "demo.so: ok, 7 task(s)");

    // Task for task, what a host loading the same file answers.
    Service svc(ServiceOptions::examples({"demo.so"}));
    for (const json &task : verdict["tasks"])
        CHECK(task == get_json(svc.cli(), "/api/v1/tasks/" + task["name"].get<std::string>()));
}

TEST_CASE("plugin check: each refused file gives the host's reason, exit 1") {
    struct Case {
        std::string file;
        std::string reason;
    };
    const Case cases[] = {
        // (SIGABRT: under ASan a SIGSEGV is the sanitizer's report and exit 1.)
        {"load_static_throw.so", "static initializer crashed: SIGABRT"},
        {"init_fails.so", "database unavailable"},
        {"not_a_plugin.so", "not a loadable shared library"},
        {"no_entry.so", "no entry symbol taskhost_plugin_v1"},
        {"wrong_abi.so", "ABI mismatch"},
        {"count_mismatch.so", "2 parameter name(s) given for 1 caller parameter(s)"},
    };
    for (const Case &c : cases) {
        CAPTURE(c.file);
        const Ran ran = run_taskhost("plugin check " + fixture_plugin(c.file).string());
        CHECK(ran.status == 1);
        const json verdict = json::parse(ran.out);
        CHECK(verdict["verdict"] == "refused");
        REQUIRE(verdict["reasons"].size() == 1);
        CHECK_CONTAINS(verdict["reasons"][0].get<std::string>(), c.reason);
        CHECK_CONTAINS(ran.err, c.file + ": would be refused: ");
        CHECK_FALSE(contains(ran.err, "refused: " + verdict["reasons"][0].get<std::string>() + "\nerror"));
    }
}

TEST_CASE("plugin check: a hang is cut off at --timeout-s; several files answer an array") {
    const Ran hang = run_taskhost("plugin check --timeout-s 1 -q " + fixture_plugin("load_init_hang.so").string());
    CHECK(hang.status == 1);
    CHECK(hang.out.empty());  // -q
    CHECK_CONTAINS(hang.err, "init did not return within 1 s");

    const Ran two = run_taskhost("plugin check " + example_plugin("math.so").string() + " " +
                                 fixture_plugin("bad_name.so").string() + " nowhere.so");
    CHECK(two.status == 1);
    const json verdicts = json::parse(two.out);
    REQUIRE(verdicts.size() == 3);
    CHECK(verdicts[0]["verdict"] == "ok");
    CHECK(verdicts[1]["verdict"] == "refused");
    CHECK(verdicts[2]["reasons"][0] == "no such file");
}

TEST_CASE("plugin check: usage mistakes exit 2 and say how it is used") {
    const Ran none = run_taskhost("plugin check");
    CHECK(none.status == 2);
    CHECK_CONTAINS(none.err, "FILE is required");
    const Ran help = run_taskhost("plugin --help");
    CHECK(help.status == 0);
    CHECK_CONTAINS(help.out, "check");
    CHECK_CONTAINS(help.out, "new");
    const Ran host_help = run_taskhost("--help");
    CHECK(host_help.status == 0);
    CHECK_CONTAINS(host_help.out, "taskhost plugin new NAME");
}

TEST_CASE("plugin new: writes a project once, refuses bad names and non-empty folders") {
    TempDir tmp;
    const Ran made = run_taskhost("plugin new greeter --dir " + tmp.path().string());
    CHECK(made.status == 0);
    for (const char *file : {"CMakeLists.txt", "src/greeter.cpp", "tests/greeter_tests.cpp", "README.md", ".gitignore"})
        CHECK_MESSAGE(fs::is_regular_file(tmp / "greeter" / file), file);
    std::ifstream cmake(tmp / "greeter" / "CMakeLists.txt");
    std::ostringstream text;
    text << cmake.rdbuf();
    CHECK_CONTAINS(text.str(), "taskhost_add_plugin(greeter SOURCES src/greeter.cpp)");
    CHECK_FALSE(contains(text.str(), "@NAME@"));

    const Ran again = run_taskhost("plugin new greeter --dir " + tmp.path().string());
    CHECK(again.status == 1);
    CHECK_CONTAINS(again.err, "exists and is not empty");

    const Ran bad = run_taskhost("plugin new 9lives --dir " + tmp.path().string());
    CHECK(bad.status == 2);
    CHECK_CONTAINS(bad.err, "not a usable plugin name");
    CHECK_FALSE(fs::exists(tmp / "9lives"));
}
