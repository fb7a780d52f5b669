// Tracebacks of tasks that throw: recorded in the plugin where the exception
// was thrown, symbolized by the host (function, file, line), and always
// carrying the plugin's file name, build-id and module offsets, which
// addr2line resolves offline (README, "Writing a plugin").
#include "test_util.hpp"

#include <cstdio>
#include <sstream>

using namespace th_test;

namespace {

ServiceOptions only(const std::string &plugin) {
    ServiceOptions o;
    o.plugins = {fixture_plugin(plugin)};
    return o;
}

// The failed job's error_traceback (and the same text in its error artifact).
std::string traceback_of(httplib::Client &cli, const std::string &task) {
    const std::string id = submit(cli, task);
    const json job = wait_job(cli, id);
    INFO(job.dump());
    REQUIRE(job["status"] == "failed");
    REQUIRE(job["error_traceback"].is_string());
    const std::string traceback = job["error_traceback"];
    CHECK(get_artifact(cli, job["artifact_id"])["data"]["error"]["traceback"] == traceback);
    return traceback;
}

// The "  #N ..." lines.
std::vector<std::string> frames_of(const std::string &traceback) {
    std::vector<std::string> frames;
    std::istringstream in(traceback);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("  #")) frames.push_back(line);
    return frames;
}

// Where each fixture throw is (thrower.cpp's own answer).
json throw_lines(httplib::Client &cli) {
    const json job = wait_job(cli, submit(cli, "lines"));
    REQUIRE(job["status"] == "completed");
    return get_artifact(cli, job["artifact_id"])["data"]["result"];
}

std::string at_line(const json &lines, const char *which) {
    return "thrower.cpp:" + std::to_string(lines[which].get<int>()) + " (";
}

// "0x..." after "<module>+" in a frame line.
std::string offset_in(const std::string &frame, const std::string &module) {
    const auto at = frame.find(module + "+0x");
    if (at == std::string::npos) return {};
    const auto start = at + module.size() + 1;
    return frame.substr(start, frame.find_first_of(",)", start) - start);
}

std::string build_id_in(const std::string &traceback) {
    const auto at = traceback.find(" build-id ");
    if (at == std::string::npos) return {};
    const auto start = at + 10;
    return traceback.substr(start, traceback.find(':', start) - start);
}

std::string run(const std::string &command) {
    std::string out;
    if (FILE *p = ::popen(command.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
        ::pclose(p);
    }
    return out;
}

}  // namespace

TEST_SUITE("traceback") {

TEST_CASE("traceback: the first frame is the throwing function and line") {
    // thrower_no_aranges.so: debug info without .debug_aranges, as clang writes it.
    for (const std::string file : {"thrower.so", "thrower_no_aranges.so"}) {
        CAPTURE(file);
        Service svc(only(file));
        auto &cli = svc.cli();
        const json lines = throw_lines(cli);
        const std::string tb = traceback_of(cli, "deep");
        INFO(tb);
        CHECK(
            tb.starts_with("Traceback (innermost first, captured where it was thrown), plugin " + file + " build-id "));
        CHECK(build_id_in(tb).size() == 40);
        const auto frames = frames_of(tb);
        REQUIRE(frames.size() >= 5);
        CHECK(frames[0].starts_with("  #0 "));
        CHECK_CONTAINS(frames[0], "fail_deep(int)");
        CHECK_CONTAINS(frames[0], at_line(lines, "deep"));
        CHECK_CONTAINS(frames[0], "(" + file + "+0x");
        CHECK_CONTAINS(frames[1], "middle(int)");
        CHECK_CONTAINS(frames[2], "outer(int)");
        CHECK_CONTAINS(frames[3], "deep()");
        // The SDK's part is one line, the host's none.
        CHECK_CONTAINS(frames.back(), "the taskhost SDK calling the task (" + file + "+0x");
        CHECK(frames.size() == 5);
        CHECK(tb.find("/proc/self/fd") == std::string::npos);
        CHECK(tb.ends_with("\nstd::runtime_error: boom at depth 2"));
    }
}

TEST_CASE("traceback: a stripped plugin's offsets resolve offline with addr2line") {
    std::string debug_build_id;
    {
        Service svc(only("thrower.so"));
        debug_build_id = build_id_in(traceback_of(svc.cli(), "deep"));
    }
    Service svc(only("thrower_stripped.so"));
    auto &cli = svc.cli();
    const json lines = throw_lines(cli);
    const std::string tb = traceback_of(cli, "deep");
    INFO(tb);
    CHECK(
        tb.starts_with("Traceback (innermost first, captured where it was thrown), plugin thrower_stripped.so "
                       "build-id "));
    CHECK(build_id_in(tb) == debug_build_id);  // the same build: its debug info is thrower.so's
    const auto frames = frames_of(tb);
    REQUIRE_FALSE(frames.empty());
    CHECK(tb.find("thrower.cpp") == std::string::npos);  // no line info without debug info
    const std::string offset = offset_in(frames[0], "thrower_stripped.so");
    REQUIRE(offset.starts_with("0x"));
    const std::string resolved = run("addr2line -f -C -e '" + fixture_plugin("thrower.so").string() + "' " + offset);
    INFO(resolved);
    CHECK_CONTAINS(resolved, "fail_deep(int)");
    CHECK_CONTAINS(resolved, "thrower.cpp:" + std::to_string(lines["deep"].get<int>()));
}

TEST_CASE("traceback: an exception caught inside the task does not hide the one that escaped") {
    Service svc(only("thrower.so"));
    auto &cli = svc.cli();
    const json lines = throw_lines(cli);
    const std::string tb = traceback_of(cli, "caught_then_thrown");
    INFO(tb);
    CHECK_CONTAINS(tb, "captured where it was thrown");
    const auto frames = frames_of(tb);
    REQUIRE(frames.size() >= 2);
    CHECK_CONTAINS(frames[0], "fail_for_good()");
    CHECK_CONTAINS(frames[0], at_line(lines, "second"));
    CHECK_CONTAINS(frames[1], "caught_then_thrown()");
    CHECK(tb.find("fail_recoverably") == std::string::npos);
    CHECK(tb.ends_with("\nstd::logic_error: the second one"));
}

TEST_CASE("traceback: std::vector::at shows the caller's line") {
    Service svc(only("thrower.so"));
    auto &cli = svc.cli();
    const json lines = throw_lines(cli);
    const std::string tb = traceback_of(cli, "vector_at");
    INFO(tb);
    CHECK_CONTAINS(tb, "captured where it was thrown");
    const auto frames = frames_of(tb);
    REQUIRE(frames.size() >= 2);
    CHECK_CONTAINS(frames[0], "std::vector<int");  // libstdc++'s range check, inlined
    bool caller_found = false;
    for (const auto &f : frames)
        if (contains(f, "read_past_end") && contains(f, at_line(lines, "vector_at"))) caller_found = true;
    CHECK(caller_found);
    CHECK_CONTAINS(tb, "\nstd::out_of_range: vector::_M_range_check: __n (which is 5) >= this->size() (which is 3)");
}

TEST_CASE("traceback: a throw inside libstdc++.so falls back to where the plugin caught it") {
    Service svc(only("thrower.so"));
    const std::string tb = traceback_of(svc.cli(), "library_throw");
    INFO(tb);
    CHECK(
        tb.starts_with("Traceback (innermost first, captured where the plugin caught it: the throw site was not "
                       "recorded), plugin thrower.so build-id "));
    CHECK_CONTAINS(tb, "(thrower.so+0x");
    CHECK_CONTAINS(tb, "\nstd::runtime_error: ");
}

}  // TEST_SUITE("traceback")
