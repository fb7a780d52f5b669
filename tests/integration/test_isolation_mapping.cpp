// --isolation process: the host lists and
// describes every plugin from its trial child's report and never maps one
// itself (a plugin named in --in-process-plugins excepted). What the API
// says of tasks and plugins is byte for byte what an in-process host says.
// (Running jobs there: test_isolation.cpp.)
#include "test_util.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <set>

using namespace th_test;

namespace {

// The lines of /proc/PID/maps that map a sealed plugin image
// ("/memfd:3-demo.so (deleted)").
std::vector<std::string> plugin_mappings(pid_t pid) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    std::vector<std::string> out;
    for (std::string line; std::getline(maps, line);)
        if (contains(line, "/memfd:") && contains(line, ".so")) out.push_back(line);
    return out;
}

std::string body_of(httplib::Client &cli, const std::string &path) {
    const auto res = cli.Get(path);
    REQUIRE_STATUS(res, 200);
    return res->body;
}

// GET /api/v1/plugins without when each was loaded.
json plugins_listed(httplib::Client &cli) {
    json list = get_json(cli, "/api/v1/plugins");
    for (auto &entry : list) entry.erase("loaded_at");
    return list;
}

}  // namespace

TEST_SUITE("isolation") {

TEST_CASE("--isolation process: TaskInfo byte for byte as in process, and no plugin mapped in the host") {
    Service in_process(ServiceOptions{}.in_process());
    Service isolated;  // the default

    const std::string listed = body_of(in_process.cli(), "/api/v1/tasks");
    CHECK(body_of(isolated.cli(), "/api/v1/tasks") == listed);
    const json tasks = json::parse(listed);
    REQUIRE(tasks.size() >= 10);
    for (const auto &task : tasks) {
        const std::string path = "/api/v1/tasks/" + task.at("name").get<std::string>();
        CAPTURE(path);
        CHECK(body_of(isolated.cli(), path) == body_of(in_process.cli(), path));
    }
    CHECK(body_of(isolated.cli(), "/api/v1/tasks?tags=math") == body_of(in_process.cli(), "/api/v1/tasks?tags=math"));
    const json plugins = plugins_listed(in_process.cli());
    CHECK(plugins.size() == 4);
    CHECK(plugins_listed(isolated.cli()) == plugins);  // build_info, tasks, hashes...

    CHECK(plugin_mappings(in_process.host().pid()).size() >= 4);  // the check sees mappings at all
    const auto mapped = plugin_mappings(isolated.host().pid());
    CHECK_MESSAGE(mapped.empty(), "mapped in the host: " << (mapped.empty() ? "" : mapped.front()));
}

TEST_CASE("--in-process-plugins: the plugins named are mapped in the host, and only they") {
    Service svc(ServiceOptions{}.flags({"--isolation", "process", "--in-process-plugins", " math ,nonexistent"}));
    const auto mapped = plugin_mappings(svc.host().pid());
    REQUIRE_FALSE(mapped.empty());
    for (const auto &line : mapped) CHECK_CONTAINS(line, "-math.so");
    const json tasks = get_json(svc.cli(), "/api/v1/tasks");
    std::set<std::string> names;
    for (const auto &t : tasks) names.insert(t.at("name").get<std::string>());
    CHECK(names.count("add"));         // math, in the host
    CHECK(names.count("greet_user"));  // demo, described by its trial
    CHECK(names.count("store_result"));
}

TEST_CASE("--isolation: a bad value, or process isolation without a trial process, refuses to start") {
    {
        int status = 0;
        std::string out;
        std::tie(status, out) = run_host_to_exit("--isolation threads");
        CHECK(status != 0);
        CHECK_CONTAINS(out, "must be process or in-process, not 'threads'");
    }
    {
        int status = 0;
        std::string out;
        std::tie(status, out) = run_host_to_exit("--isolation process --probe-timeout-s 0");
        CHECK(status != 0);
        CHECK_CONTAINS(out, "--probe-timeout-s");
        CHECK_CONTAINS(out, "must be above 0 with --isolation process (the default)");
    }
    const std::string cmd = "TASKHOST_ISOLATION=workers timeout 30 " + std::string(TASKHOST_BINARY) +
                            " --port 0 --db :memory: --plugins /nonexistent >/dev/null 2>&1";
    const int status = std::system(cmd.c_str());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) != 0);
    CHECK(WEXITSTATUS(status) != 124);  // refused, not timed out serving
}

}  // TEST_SUITE("isolation")
