// Shared helpers for the HTTP integration tests: a started service per test,
// JSON/HTTP shortcuts, bounded waits and problem+json checks.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "host_process.hpp"

// The sanitizer this build has: gcc says __SANITIZE_*__, clang __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define TH_TEST_ASAN 1
#elif defined(__SANITIZE_THREAD__)
#define TH_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TH_TEST_ASAN 1
#elif __has_feature(thread_sanitizer)
#define TH_TEST_TSAN 1
#endif
#endif

namespace th_test {

using json = nlohmann::json;
using namespace std::chrono_literals;

// How a worker that segfaults is said to have ended. A sanitizer handles
// the SIGSEGV itself (a stack overflow included): it reports, then exits
// with its own status.
#if defined(TH_TEST_TSAN)
inline constexpr const char *worker_segv_cause = "exit status 66";
#elif defined(TH_TEST_ASAN)
inline constexpr const char *worker_segv_cause = "exit status 1";
#else
inline constexpr const char *worker_segv_cause = "SIGSEGV";
#endif

inline bool contains(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

#define CHECK_CONTAINS(haystack, needle)                     \
    CHECK_MESSAGE(::th_test::contains((haystack), (needle)), \
                  "expected \"" << (haystack) << "\" to contain \"" << (needle) << "\"")
#define REQUIRE_STATUS(res, code)                                                                                \
    do {                                                                                                         \
        const httplib::Result &th_res_ = (res);                                                                  \
        REQUIRE_MESSAGE(th_res_, "request failed: " << httplib::to_string(th_res_.error()));                     \
        REQUIRE_MESSAGE(th_res_->status == (code), "status " << th_res_->status << ", body: " << th_res_->body); \
    } while (0)
#define CHECK_STATUS(res, code)                                                                                \
    do {                                                                                                       \
        const httplib::Result &th_res_ = (res);                                                                \
        REQUIRE_MESSAGE(th_res_, "request failed: " << httplib::to_string(th_res_.error()));                   \
        CHECK_MESSAGE(th_res_->status == (code), "status " << th_res_->status << ", body: " << th_res_->body); \
    } while (0)

// ^[0-7][0-9A-HJKMNP-TV-Z]{25}$
bool is_ulid(const std::string &s);
bool is_ulid(const json &j);
// YYYY-MM-DDTHH:MM:SS[.fraction]Z
bool is_iso_utc(const json &j);

struct ServiceOptions {
    std::vector<fs::path> plugins = example_plugins();
    std::vector<std::string> extra;
    bool file_db = false;  // a SQLite file in the temp folder instead of :memory:
    std::string db_url = {};  // a database URL (PostgreSQL) instead of either

    // Only some of the example plugins (by file name): starts faster.
    static ServiceOptions examples(std::vector<std::string> files) {
        ServiceOptions o;
        o.plugins.clear();
        for (const auto &f : files) o.plugins.push_back(example_plugin(f));
        return o;
    }
    ServiceOptions &flags(std::vector<std::string> more) {
        extra.insert(extra.end(), more.begin(), more.end());
        return *this;
    }
    // --isolation in-process: tasks run in the host's own threads (the
    // default runs them in worker processes).
    ServiceOptions &in_process() { return flags({"--isolation", "in-process"}); }
    ServiceOptions &with_file_db() {
        file_db = true;
        return *this;
    }
    ServiceOptions &with_db_url(std::string url) {
        db_url = std::move(url);
        return *this;
    }
    ServiceOptions &with_plugin(fs::path file) {
        plugins.push_back(std::move(file));
        return *this;
    }
};

class PgSchema;

// Whether the suites that keep data across restarts run on PostgreSQL
// (TASKHOST_TEST_STORE=postgres, the ctest entry integration-postgres):
// then with_file_db() gives the host a PostgreSQL schema of its own.
bool testing_postgres();

// A taskhost started for one test: its own temp folder, plugin folder and db.
class Service {
public:
    explicit Service(ServiceOptions options = {});
    ~Service();

    httplib::Client &cli() { return *cli_; }
    HostProcess &host() { return *host_; }
    const fs::path &dir() const { return tmp_.path(); }
    fs::path plugins_dir() const { return tmp_.path() / "plugins"; }
    std::string db_path() const { return db_; }

    // Restarts the host on the same database and plugin folder (new port).
    void restart();
    void restart(std::vector<std::string> extra);
    // kill -9, then start again.
    void crash_and_restart(std::vector<std::string> extra);
    void kill9();
    // Runs SQL on its database (with_file_db(): SQLite or PostgreSQL), as
    // an operator could while it is stopped; returns the first cell of the
    // first row ("" if none).
    std::string sql(const std::string &statement) const;

private:
    void connect();

    TempDir tmp_;
    std::unique_ptr<PgSchema> schema_;  // with_file_db() on PostgreSQL
    std::string db_;
    std::unique_ptr<HostProcess> host_;
    std::unique_ptr<httplib::Client> cli_;
};

// ---- JSON over HTTP ------------------------------------------------------------

// Parses a response body; fails the test (REQUIRE) if it is not JSON.
json body_json(const httplib::Result &res);
// GET path, REQUIRE 200, return the JSON body.
json get_json(httplib::Client &cli, const std::string &path);
httplib::Result post_json(httplib::Client &cli, const std::string &path, const json &body);
httplib::Result put_json(httplib::Client &cli, const std::string &path, const json &body);

// Checks an RFC 9457 error response: status, Content-Type, the five fields;
// returns the body. `detail_contains` is checked when not empty.
json check_problem(const httplib::Result &res, int status, const std::string &detail_contains = "");

// ---- tasks and jobs --------------------------------------------------------------

// POST /api/v1/tasks/{task}/$execute {"params": params}; REQUIREs 202 and
// returns the job id.
std::string submit(httplib::Client &cli, const std::string &task, const json &params = json::object());
// GET /api/v1/jobs/{id}, REQUIRE 200.
json get_job(httplib::Client &cli, const std::string &id);
// Long-polls GET /api/v1/jobs/{id}?wait= until the job is terminal or the
// deadline passes; REQUIREs that it became terminal and returns the record.
json wait_job(httplib::Client &cli, const std::string &id, double timeout_s = 10);
// Polls the job (bounded, short steps) until its status is `status`;
// REQUIREs it within the deadline.
json wait_status(httplib::Client &cli, const std::string &id, const std::string &status, double timeout_s = 10);
// GET /api/v1/artifacts/{id}, REQUIRE 200.
json get_artifact(httplib::Client &cli, const std::string &id);
// Runs a task to the end and returns {job, artifact}.
struct Finished {
    json job;
    json artifact;
};
Finished run_task(httplib::Client &cli, const std::string &task, const json &params = json::object(),
                  const std::string &expect_status = "completed");

bool is_terminal(const std::string &status);

// Runs taskhost with `args` (after --port 0 --db DB --plugins <examples>)
// where it is expected to exit by itself (a refused start, --version):
// returns its exit status and what it printed on stdout and stderr. Bounded
// by `timeout 30`, so a host that starts after all fails instead of hanging.
std::pair<int, std::string> run_host_to_exit(const std::string &args, const std::string &db = ":memory:");

// ---- raw HTTP ---------------------------------------------------------------------

// One TCP connection to the host, HTTP written by hand: for what a client
// library hides (a second request on the same connection, malformed input).
// Every read is bounded by `timeout`.
class RawConnection {
public:
    explicit RawConnection(int port, std::chrono::seconds timeout = std::chrono::seconds(10));
    ~RawConnection();
    RawConnection(const RawConnection &) = delete;
    RawConnection &operator=(const RawConnection &) = delete;

    // Sends all of `bytes`; false if the server stopped reading first.
    bool send(const std::string &bytes);
    // The status of the next response; its body (by Content-Length) is read too.
    int read_status();
    // Everything the server sends until it closes the connection.
    std::string read_all();

private:
    bool fill();
    int fd_;
    std::string buffered_;
};

// ---- SSE -------------------------------------------------------------------------

struct SseResult {
    int status = 0;
    std::string content_type;
    std::string cache_control;
    std::string connection;
    std::string content_encoding;
    size_t connection_headers = 0;
    std::string raw;                // whole stream text
    std::vector<std::string> data;  // payload of each "data:" line, in order
};
// Reads a $stream response until the server ends it, or hangs up after
// `max_events` data events (for streams that never end).
SseResult read_sse(httplib::Client &cli, const std::string &path, size_t max_events = SIZE_MAX,
                   const httplib::Headers &headers = {});
// The JSON of each data event (each must be JSON).
std::vector<json> sse_events(const SseResult &sse);

// ---- times as the API writes them ------------------------------------------------

// "2026-12-04T10:00:00.123456Z" → µs since the epoch (REQUIREs the form).
int64_t iso_us(const json &text);
// The inverse: µs since the epoch → "2026-12-04T10:00:00.123456Z".
std::string iso_of(int64_t us);
// Now, µs since the epoch (the wall clock the host stamps records with).
int64_t wall_us();

// Polls `pred` every few ms until true or the deadline; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10000ms, std::chrono::milliseconds step = 20ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(step);
    }
}

}  // namespace th_test
