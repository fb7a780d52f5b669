#include "test_util.hpp"

#include "pg_cluster.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <regex>
#include <sstream>

namespace th_test {

bool is_ulid(const std::string &s) {
    static const std::regex re("^[0-7][0-9A-HJKMNP-TV-Z]{25}$");
    return std::regex_match(s, re);
}

bool is_ulid(const json &j) { return j.is_string() && is_ulid(j.get<std::string>()); }

bool is_iso_utc(const json &j) {
    static const std::regex re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$)");
    return j.is_string() && std::regex_match(j.get<std::string>(), re);
}

bool is_terminal(const std::string &status) {
    return status == "completed" || status == "failed" || status == "canceled";
}

// ---- Service -------------------------------------------------------------------

Service::Service(ServiceOptions options) {
    assemble_plugins(plugins_dir(), options.plugins);
    if (options.file_db && options.db_url.empty() && testing_postgres()) {
        schema_ = std::make_unique<PgSchema>();
        options.db_url = schema_->url();
    }
    db_ = !options.db_url.empty() ? options.db_url
          : options.file_db       ? (tmp_.path() / "taskhost.db").string()
                                  : ":memory:";
    HostOptions ho;
    ho.plugins_dir = plugins_dir();
    ho.db = db_;
    ho.extra = std::move(options.extra);
    // The same host after a restart: it fails its own interrupted jobs at
    // once, as a host on SQLite does.
    if (schema_) ho.kept = {"--host-id", "test-host"};
    ho.work_dir = tmp_.path();
    host_ = std::make_unique<HostProcess>(std::move(ho));
    connect();
}

Service::~Service() {
    cli_.reset();
    host_.reset();  // before its schema goes
}

bool testing_postgres() {
    const char *kind = std::getenv("TASKHOST_TEST_STORE");
    return kind && std::string(kind) == "postgres";
}

void Service::connect() { cli_ = host_->make_client(); }

std::string Service::sql(const std::string &statement) const {
    if (schema_) return schema_->query(statement);
    REQUIRE_MESSAGE(db_ != ":memory:", "Service::sql needs with_file_db()");
    sqlite3 *db = nullptr;
    REQUIRE(sqlite3_open(db_.c_str(), &db) == SQLITE_OK);
    std::string first;
    char *error = nullptr;
    const int rc = sqlite3_exec(
        db, statement.c_str(),
        [](void *out, int columns, char **values, char **) {
            auto &cell = *static_cast<std::string *>(out);
            if (cell.empty() && columns > 0 && values[0]) cell = values[0];
            return 0;
        },
        &first, &error);
    const std::string why = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, "SQL failed: " << why << ": " << statement);
    return first;
}

void Service::restart() {
    cli_.reset();
    host_->restart();
    connect();
}

void Service::restart(std::vector<std::string> extra) {
    cli_.reset();
    host_->restart(std::move(extra));
    connect();
}

void Service::kill9() {
    cli_.reset();
    host_->kill9();
}

void Service::crash_and_restart(std::vector<std::string> extra) {
    kill9();
    host_->restart(std::move(extra));  // nothing to stop: starts again
    connect();
}

// ---- JSON over HTTP ------------------------------------------------------------

json body_json(const httplib::Result &res) {
    REQUIRE_MESSAGE(res, "request failed: " << httplib::to_string(res.error()));
    json j = json::parse(res->body, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), "body is not JSON (status " << res->status << "): " << res->body);
    return j;
}

json get_json(httplib::Client &cli, const std::string &path) {
    auto res = cli.Get(path.c_str());
    REQUIRE_MESSAGE(res, "GET " << path << " failed: " << httplib::to_string(res.error()));
    REQUIRE_MESSAGE(res->status == 200, "GET " << path << " → " << res->status << ": " << res->body);
    return body_json(res);
}

httplib::Result post_json(httplib::Client &cli, const std::string &path, const json &body) {
    return cli.Post(path.c_str(), body.dump(), "application/json");
}

httplib::Result put_json(httplib::Client &cli, const std::string &path, const json &body) {
    return cli.Put(path.c_str(), body.dump(), "application/json");
}

json check_problem(const httplib::Result &res, int status, const std::string &detail_contains) {
    REQUIRE_MESSAGE(res, "request failed: " << httplib::to_string(res.error()));
    CHECK_MESSAGE(res->status == status, "expected " << status << ", got " << res->status << ": " << res->body);
    CHECK(res->get_header_value("Content-Type") == "application/problem+json");
    json p = json::parse(res->body, nullptr, false);
    REQUIRE_MESSAGE(p.is_object(), "problem body is not a JSON object: " << res->body);
    for (const char *key : {"type", "title", "status", "detail", "instance"})
        CHECK_MESSAGE(p.contains(key), "problem lacks '" << key << "': " << res->body);
    CHECK(p.value("status", 0) == status);
    CHECK(p["type"].is_string());
    CHECK(p["title"].is_string());
    CHECK(p["detail"].is_string());
    if (!detail_contains.empty() && p["detail"].is_string())
        CHECK_CONTAINS(p["detail"].get<std::string>(), detail_contains);
    return p;
}

// ---- tasks and jobs --------------------------------------------------------------

std::string submit(httplib::Client &cli, const std::string &task, const json &params) {
    auto res = post_json(cli, "/api/v1/tasks/" + task + "/$execute", json{{"params", params}});
    REQUIRE_MESSAGE(res, "submit " << task << " failed: " << httplib::to_string(res.error()));
    REQUIRE_MESSAGE(res->status == 202,
                    "submit " << task << " " << params.dump() << " → " << res->status << ": " << res->body);
    json j = body_json(res);
    REQUIRE(is_ulid(j["job_id"]));
    return j["job_id"].get<std::string>();
}

json get_job(httplib::Client &cli, const std::string &id) { return get_json(cli, "/api/v1/jobs/" + id); }

json wait_job(httplib::Client &cli, const std::string &id, double timeout_s) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    json job;
    for (;;) {
        double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
        double step = std::max(0.0, std::min(left, 5.0));
        char wait[32];
        std::snprintf(wait, sizeof wait, "%.3f", step);
        auto res = cli.Get(("/api/v1/jobs/" + id + "?wait=" + wait).c_str());
        REQUIRE_MESSAGE(res, "GET job " << id << " failed: " << httplib::to_string(res.error()));
        REQUIRE_MESSAGE(res->status == 200, "GET job " << id << " → " << res->status << ": " << res->body);
        job = body_json(res);
        if (is_terminal(job.value("status", ""))) return job;
        if (left <= 0) break;
        // The long poll should only return early when terminal; guard against
        // a server that returns at once anyway.
        std::this_thread::sleep_for(10ms);
    }
    FAIL("job " << id << " not terminal after " << timeout_s << " s: " << job.dump());
    return job;
}

json wait_status(httplib::Client &cli, const std::string &id, const std::string &status, double timeout_s) {
    json job;
    bool ok = eventually(
        [&] {
            auto res = cli.Get(("/api/v1/jobs/" + id).c_str());
            if (!res || res->status != 200) return false;
            job = json::parse(res->body, nullptr, false);
            return job.is_object() && job.value("status", "") == status;
        },
        std::chrono::milliseconds(static_cast<int>(timeout_s * 1000)), 10ms);
    REQUIRE_MESSAGE(ok, "job " << id << " did not reach status " << status << ": " << job.dump());
    return job;
}

json get_artifact(httplib::Client &cli, const std::string &id) { return get_json(cli, "/api/v1/artifacts/" + id); }

Finished run_task(httplib::Client &cli, const std::string &task, const json &params, const std::string &expect_status) {
    std::string id = submit(cli, task, params);
    json job = wait_job(cli, id);
    REQUIRE_MESSAGE(job["status"] == expect_status, task << " job: " << job.dump());
    json artifact;
    if (job.contains("artifact_id") && job["artifact_id"].is_string())
        artifact = get_artifact(cli, job["artifact_id"].get<std::string>());
    return {job, artifact};
}

// ---- SSE -------------------------------------------------------------------------

SseResult read_sse(httplib::Client &cli, const std::string &path, size_t max_events, const httplib::Headers &headers) {
    SseResult out;
    size_t scanned = 0, events = 0;  // complete events seen so far (they end with a blank line)
    auto res = cli.Get(
        path.c_str(), headers,
        [&](const httplib::Response &r) {
            out.status = r.status;
            out.content_type = r.get_header_value("Content-Type");
            out.content_encoding = r.get_header_value("Content-Encoding");
            out.cache_control = r.get_header_value("Cache-Control");
            out.connection = r.get_header_value("Connection");
            out.connection_headers = r.get_header_value_count("Connection");
            return true;
        },
        [&](const char *data, size_t len) {
            out.raw.append(data, len);
            for (size_t end; (end = out.raw.find("\n\n", scanned)) != std::string::npos; scanned = end + 2)
                if (out.raw.compare(scanned, 5, "data:") == 0) ++events;
            return events < max_events;  // false: hang up
        });
    const bool hung_up = events >= max_events;
    REQUIRE_MESSAGE((res || hung_up), "GET " << path << " failed: " << httplib::to_string(res.error()));
    if (out.status == 0 && res) out.status = res->status;
    if (out.raw.empty() && res) out.raw = res->body;
    size_t pos = 0;
    while (pos < out.raw.size()) {
        size_t nl = out.raw.find('\n', pos);
        if (nl == std::string::npos) nl = out.raw.size();
        std::string line = out.raw.substr(pos, nl - pos);
        if (line.rfind("data:", 0) == 0) {
            std::string payload = line.substr(5);
            if (!payload.empty() && payload[0] == ' ') payload.erase(0, 1);
            out.data.push_back(payload);
        }
        pos = nl + 1;
    }
    return out;
}

std::vector<json> sse_events(const SseResult &sse) {
    std::vector<json> out;
    for (const auto &d : sse.data) {
        json j = json::parse(d, nullptr, false);
        CHECK_MESSAGE(!j.is_discarded(), "event is not JSON: " << d);
        out.push_back(j);
    }
    return out;
}

std::pair<int, std::string> run_host_to_exit(const std::string &args, const std::string &db) {
    std::string cmd = "timeout 30 " + std::string(TASKHOST_BINARY) + " --port 0 --db '" + db + "' --plugins " +
                      std::string(TASKHOST_PLUGIN_DIR) + " " + args + " 2>&1";
    FILE *p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

RawConnection::RawConnection(int port, std::chrono::seconds timeout) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    timeval tv{static_cast<time_t>(timeout.count()), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
}

RawConnection::~RawConnection() { ::close(fd_); }

bool RawConnection::send(const std::string &bytes) {
    for (size_t done = 0; done < bytes.size();) {
        ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
        if (n <= 0) return false;
        done += static_cast<size_t>(n);
    }
    return true;
}

bool RawConnection::fill() {
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<size_t>(n));
    return true;
}

int RawConnection::read_status() {
    size_t end;
    while ((end = buffered_.find("\r\n\r\n")) == std::string::npos)
        REQUIRE_MESSAGE(fill(), "the connection closed or timed out before a response");
    const std::string head = buffered_.substr(0, end);
    size_t length = 0;
    if (auto at = head.find("Content-Length: "); at != std::string::npos) length = std::stoul(head.substr(at + 16));
    while (buffered_.size() < end + 4 + length) REQUIRE_MESSAGE(fill(), "the connection closed mid-body");
    buffered_.erase(0, end + 4 + length);
    REQUIRE_MESSAGE(head.rfind("HTTP/1.1 ", 0) == 0, head);
    return std::stoi(head.substr(9, 3));
}

std::string RawConnection::read_all() {
    while (fill()) {
    }
    return std::move(buffered_);
}

// ---- times ----------------------------------------------------------------------

int64_t iso_us(const json &text) {
    REQUIRE(text.is_string());
    std::tm tm{};
    std::istringstream in(text.get<std::string>());
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    REQUIRE(!in.fail());
    int64_t micros = 0;
    if (in.peek() == '.') {
        in.get();
        std::string digits;
        while (std::isdigit(in.peek())) digits += static_cast<char>(in.get());
        digits.resize(6, '0');
        micros = std::stoll(digits);
    }
    return static_cast<int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

std::string iso_of(int64_t us) {
    const std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[64];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[80];
    std::snprintf(out, sizeof out, "%s.%06lldZ", text, static_cast<long long>(us % 1'000'000));
    return out;
}

int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace th_test
