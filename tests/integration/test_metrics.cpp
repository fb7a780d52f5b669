// GET /metrics (Prometheus text format; the original's case 88): what the
// counters say after known traffic, and that histograms are well formed.
#include "test_util.hpp"

#include <algorithm>
#include <map>
#include <sstream>

using namespace th_test;

namespace {

// "name{labels}" → value, for every sample line of the exposition.
std::map<std::string, double> scrape(httplib::Client &cli) {
    auto res = cli.Get("/metrics");
    REQUIRE_STATUS(res, 200);
    CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    std::map<std::string, double> samples;
    std::istringstream lines(res->body);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty() || line[0] == '#') continue;
        const size_t space = line.rfind(' ');
        REQUIRE_MESSAGE(space != std::string::npos, line);
        samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return samples;
}

double value(const std::map<std::string, double> &samples, const std::string &key) {
    auto it = samples.find(key);
    if (it == samples.end()) FAIL_CHECK("no sample " << key);
    return it == samples.end() ? -1 : it->second;
}

// Buckets are cumulative, end with +Inf, and +Inf equals _count.
void check_histogram(const std::map<std::string, double> &samples, const std::string &name, const std::string &labels,
                     double expected_count) {
    const std::string prefix = name + "_bucket{" + labels + ",le=\"";
    // Walk in bound order (the map's order is by text, not by number).
    std::vector<std::pair<double, double>> by_bound;
    for (auto it = samples.lower_bound(prefix); it != samples.end() && it->first.rfind(prefix, 0) == 0; ++it) {
        std::string le = it->first.substr(prefix.size());
        le = le.substr(0, le.size() - 2);  // drop `"}`
        by_bound.emplace_back(le == "+Inf" ? 1e300 : std::stod(le), it->second);
    }
    std::sort(by_bound.begin(), by_bound.end());
    REQUIRE(by_bound.size() > 2);
    double previous = 0;
    for (const auto &[bound, count] : by_bound) {
        CHECK(count >= previous);
        previous = count;
    }
    CHECK(by_bound.back().first == 1e300);
    CHECK(by_bound.back().second == expected_count);
    CHECK(value(samples, name + "_count{" + labels + "}") == expected_count);
    CHECK(value(samples, name + "_sum{" + labels + "}") >= 0);
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("/metrics: jobs by task and outcome, histograms, responses by code, store, plugins, process") {
    Service svc(ServiceOptions::examples({"demo.so", "math.so"}));
    auto &cli = svc.cli();
    auto before = scrape(cli);
    CHECK(value(before, "taskhost_info{version=\"0.1.0\"}") == 1);
    CHECK(value(before, "taskhost_tasks") == 10);
    CHECK(value(before, "taskhost_plugins_loaded") == 2);
    CHECK(value(before, "taskhost_plugin_reloads_total") == 1);
    CHECK(value(before, "process_resident_memory_bytes") > 1e6);
    CHECK(value(before, "process_open_fds") > 0);
    CHECK(before.count("taskhost_jobs_submitted_total{task=\"hello\"}") == 0);  // a task appears once used

    for (int i = 0; i < 3; ++i) run_task(cli, "hello");
    run_task(cli, "failing_task", json::object(), "failed");
    check_problem(post_json(cli, "/api/v1/tasks/greet_user/$execute", {{"params", {{"nam", "x"}}}}), 400);
    for (int i = 0; i < 2; ++i) check_problem(cli.Get("/no/such/path"), 404);
    REQUIRE_STATUS(cli.Post("/api/v1/plugins/$reload"), 200);

    auto after = scrape(cli);
    CHECK(value(after, "taskhost_jobs_submitted_total{task=\"hello\"}") == 3);
    CHECK(value(after, "taskhost_jobs_finished_total{task=\"hello\",status=\"completed\"}") == 3);
    CHECK(value(after, "taskhost_jobs_finished_total{task=\"hello\",status=\"failed\"}") == 0);
    CHECK(value(after, "taskhost_jobs_submitted_total{task=\"failing_task\"}") == 1);
    CHECK(value(after, "taskhost_jobs_finished_total{task=\"failing_task\",status=\"failed\"}") == 1);
    CHECK(value(after, "taskhost_jobs_rejected_total{task=\"greet_user\",reason=\"invalid_params\"}") == 1);
    CHECK(value(after, "taskhost_jobs_submitted_total{task=\"greet_user\"}") == 0);
    check_histogram(after, "taskhost_job_run_seconds", "task=\"hello\"", 3);
    check_histogram(after, "taskhost_job_queue_wait_seconds", "task=\"hello\"", 3);
    check_histogram(after, "taskhost_job_run_seconds", "task=\"failing_task\"", 1);
    CHECK(value(after, "taskhost_http_responses_total{code=\"404\"}") -
              (before.count("taskhost_http_responses_total{code=\"404\"}")
                   ? before.at("taskhost_http_responses_total{code=\"404\"}")
                   : 0) ==
          2);
    CHECK(value(after, "taskhost_http_responses_total{code=\"400\"}") >= 1);
    CHECK(value(after, "taskhost_plugin_reloads_total") == 2);
    CHECK(value(after, "taskhost_store_commits_total") > value(before, "taskhost_store_commits_total"));
    CHECK(value(after, "taskhost_jobs_running") == 0);
}

TEST_CASE("/metrics: a full queue's 503, and jobs canceled or deleted before they ended") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-concurrency", "1", "--queue-size", "1"}));
    auto &cli = svc.cli();
    const json slow = {{"seconds", 120}};
    std::string running = submit(cli, "slow_task", slow);
    wait_status(cli, running, "running");
    std::string queued = submit(cli, "slow_task", slow);
    check_problem(post_json(cli, "/api/v1/tasks/slow_task/$execute", {{"params", slow}}), 503);
    auto m = scrape(cli);
    CHECK(value(m, "taskhost_jobs_running") == 1);
    CHECK(value(m, "taskhost_jobs_queued") == 1);
    CHECK(value(m, "taskhost_jobs_rejected_total{task=\"slow_task\",reason=\"queue_full\"}") == 1);
    CHECK(value(m, "taskhost_jobs_submitted_total{task=\"slow_task\"}") == 2);

    REQUIRE_STATUS(cli.Post("/api/v1/jobs/" + queued + "/$cancel"), 200);  // pending: canceled at once
    REQUIRE_STATUS(cli.Delete("/api/v1/jobs/" + running), 204);            // running: deleted
    REQUIRE(eventually([&] { return value(scrape(cli), "taskhost_jobs_running") == 0; }));
    m = scrape(cli);
    CHECK(value(m, "taskhost_jobs_finished_total{task=\"slow_task\",status=\"canceled\"}") == 1);
    CHECK(value(m, "taskhost_jobs_finished_total{task=\"slow_task\",status=\"deleted\"}") == 1);
    CHECK(value(m, "taskhost_jobs_finished_total{task=\"slow_task\",status=\"completed\"}") == 0);
    check_histogram(m, "taskhost_job_queue_wait_seconds", "task=\"slow_task\"", 1);  // only one started
}

TEST_CASE("/metrics needs the API key when keys are required") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--api-keys", "k"}));
    check_problem(svc.cli().Get("/metrics"), 401);
    CHECK(svc.cli().Get("/metrics", httplib::Headers{{"X-API-Key", "k"}})->status == 200);
}

}  // TEST_SUITE("metrics")
