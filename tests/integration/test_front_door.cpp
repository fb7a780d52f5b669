// The HTTP front door under abuse (issue 14): each case is one attack from
// the issue's table, with the caps set low so a few hundred connections
// show them. For each, a normal client still gets its answer quickly, and
// the host's threads stay bounded.
#include "test_util.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

using namespace th_test;

namespace {

// A value from /proc/PID/status ("Threads", "VmRSS" in kB).
long proc_status(pid_t pid, const std::string &field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

// User + system CPU seconds the process has used.
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stol(field);
        if (i == 15) stime = std::stol(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A plain connected socket (many of them at once; RawConnection is for one).
int connect_to(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
    return fd;
}

void send_bytes(int fd, const std::string &bytes) { (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }

// Whether the server has closed `fd` (reads until EOF or an error), waiting
// up to `timeout`.
bool closed_by_server(int fd, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return true;
    }
}

int status_in(const std::string &response) {
    if (response.rfind("HTTP/1.1 ", 0) != 0) return 0;
    return std::stoi(response.substr(9, 3));
}

// Sends `bytes` on a fresh connection and reads until the server closes it.
std::string round_trip(int port, const std::string &bytes) {
    RawConnection conn(port, std::chrono::seconds(5));
    conn.send(bytes);
    return conn.read_all();
}

std::string hex(size_t n) {
    char text[32];
    std::snprintf(text, sizeof text, "%zx", n);
    return text;
}

size_t job_count(httplib::Client &cli) { return get_json(cli, "/api/v1/jobs?page=1&size=1")["total"].get<size_t>(); }

// A normal client answers within `limit`.
void check_normal_client(HostProcess &host, std::chrono::milliseconds limit = 2000ms) {
    auto cli = host.make_client();
    auto started = std::chrono::steady_clock::now();
    auto res = cli->Get("/health");
    auto took = std::chrono::steady_clock::now() - started;
    REQUIRE_MESSAGE(res, "a normal client got no answer: " << httplib::to_string(res.error()));
    CHECK(res->status == 200);
    CHECK(took < limit);
}

const std::string execute_head = "POST /api/v1/tasks/add/$execute HTTP/1.1\r\nHost: 127.0.0.1\r\n";
const std::string add_body = R"({"params":{"a":1,"b":2}})";

}  // namespace

TEST_SUITE("front door") {

TEST_CASE("a chunked body counts against --max-body-bytes as it is read: 413 and closed") {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--max-body-bytes", "4096"}));
    const long rss_before = proc_status(svc.host().pid(), "VmRSS");
    RawConnection conn(svc.host().port(), 5s);
    conn.send(execute_head + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    // Far more than the limit, in 1 KiB chunks; the host stops reading at it.
    std::string chunk = "400\r\n" + std::string(1024, ' ') + "\r\n";
    for (int i = 0; i < 64 && conn.send(chunk); ++i) {
    }
    std::string answer = conn.read_all();
    CHECK(status_in(answer) == 413);
    CHECK_CONTAINS(answer, "Connection: close");
    CHECK(proc_status(svc.host().pid(), "VmRSS") - rss_before < 20 * 1024);
    // Within the limit, chunked works.
    std::string ok = round_trip(svc.host().port(), execute_head +
                                                     "Content-Type: application/json\r\nTransfer-Encoding: "
                                                     "chunked\r\nConnection: close\r\n\r\n" +
                                                     "5\r\n" + add_body.substr(0, 5) + "\r\n" +
                                                     hex(add_body.size() - 5) + "\r\n" +
                                                     add_body.substr(5) + "\r\n0\r\n\r\n");
    CHECK(status_in(ok) == 202);
}

TEST_CASE("with API keys on, a refused request's body is never read and its connection closes") {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--api-keys", "secret-key"}));
    RawConnection conn(svc.host().port(), 5s);
    // The head promises a huge chunked body; none of it is sent. The 401
    // must come anyway, on the head alone.
    conn.send(execute_head + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string answer = conn.read_all();
    CHECK(status_in(answer) == 401);
    CHECK_CONTAINS(answer, "Connection: close");
}

TEST_CASE("header fields are capped in number and size: 431") {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--max-header-fields", "20", "--max-header-bytes", "4096"}));
    int port = svc.host().port();
    std::string many = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 30; ++i) many += "X-F" + std::to_string(i) + ": v\r\n";
    CHECK(status_in(round_trip(port, many + "\r\n")) == 431);
    // 12 MB of header fields would be held in memory; the host stops at the cap.
    const long rss_before = proc_status(svc.host().pid(), "VmRSS");
    RawConnection conn(port, 5s);
    conn.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (int i = 0; i < 3000 && conn.send("X-Pad: " + std::string(1000, 'a') + "\r\n"); ++i) {
    }
    CHECK(status_in(conn.read_all()) == 431);
    CHECK(proc_status(svc.host().pid(), "VmRSS") - rss_before < 20 * 1024);
    check_normal_client(svc.host());
}

TEST_CASE("slowloris: heads not complete within --header-timeout are closed, and cost no thread" * doctest::test_suite("concurrency")) {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--header-timeout", "1"}));
    const pid_t pid = svc.host().pid();
    const long threads_before = proc_status(pid, "Threads");
    constexpr int kConnections = 300;
    std::vector<int> fds;
    for (int i = 0; i < kConnections; ++i) {
        fds.push_back(connect_to(svc.host().port()));
        send_bytes(fds.back(), "GET /health HTTP/1.1\r\nHost: 1");
    }
    // One more byte each, as slowloris does: it buys no time.
    for (int fd : fds) send_bytes(fd, "2");
    check_normal_client(svc.host());
    CHECK(proc_status(pid, "Threads") < threads_before + 10);
    size_t closed = 0;
    for (int fd : fds) closed += closed_by_server(fd, 5000ms);
    CHECK(closed == kConnections);
    for (int fd : fds) ::close(fd);
}

TEST_CASE("idle keep-alive connections cost no CPU and are closed after --keep-alive-timeout") {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--keep-alive-timeout", "2"}));
    const pid_t pid = svc.host().pid();
    const long threads_before = proc_status(pid, "Threads");
    constexpr int kConnections = 300;
    std::vector<int> fds;
    char buf[4096];
    for (int i = 0; i < kConnections; ++i) {  // one after the other: the pool needs no more threads
        fds.push_back(connect_to(svc.host().port()));
        send_bytes(fds.back(), "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK(::recv(fds.back(), buf, sizeof buf, 0) > 0);  // answered, kept open
    }
    const double cpu_before = cpu_seconds(pid);
    std::this_thread::sleep_for(1000ms);  // measures idle cost: nothing to wait for
    CHECK(cpu_seconds(pid) - cpu_before < 0.1);
    // Not one per connection (300). A pool thread lingers 2 ms for its
    // client's next request, so on a loaded machine a few more serve the
    // next connections meanwhile: a bound, not an exact count.
    CHECK(proc_status(pid, "Threads") < threads_before + 50);
    check_normal_client(svc.host());
    size_t closed = 0;
    for (int fd : fds) closed += closed_by_server(fd, 5000ms);
    CHECK(closed == kConnections);
    for (int fd : fds) ::close(fd);
}

TEST_CASE("connections beyond --max-connections get a 503 and are closed, never queued") {
    Service svc(ServiceOptions::examples({"math.so"}).flags({"--max-connections", "20"}));
    std::vector<int> fds;
    for (int i = 0; i < 20; ++i) fds.push_back(connect_to(svc.host().port()));
    // Accepted in order: the 21st is over the cap.
    REQUIRE(eventually([&] {
        RawConnection extra(svc.host().port(), 5s);
        extra.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        std::string answer = extra.read_all();
        return status_in(answer) == 503 && contains(answer, "Retry-After: 1");
    }));
    for (int fd : fds) ::close(fd);
    // Once they are gone, new clients are served again.
    CHECK(eventually([&] {
        auto cli = svc.host().make_client();
        auto res = cli->Get("/health");
        return res && res->status == 200;
    }));
}

TEST_CASE("waiters are capped by --max-waiters: 503 beyond, others unaffected") {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-waiters", "4", "--http-threads", "8"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 30}});
    std::vector<std::unique_ptr<RawConnection>> waiters;
    for (int i = 0; i < 4; ++i) {
        waiters.push_back(std::make_unique<RawConnection>(svc.host().port(), 5s));
        waiters.back()->send("GET /api/v1/jobs/" + id + "?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    REQUIRE(eventually([&] { return get_json(cli, "/api/v1/system")["waiting_requests"] == 4; }));
    auto over = cli.Get("/api/v1/jobs/" + id + "?wait=30");
    check_problem(over, 503, "--max-waiters");
    CHECK(over->has_header("Retry-After"));
    auto stream = cli.Get("/api/v1/jobs/" + id + "/$stream");
    check_problem(stream, 503);
    check_normal_client(svc.host());
    CHECK(cli.Get("/api/v1/jobs/" + id)->status == 200);  // without ?wait: no slot needed
    cli.Post("/api/v1/jobs/" + id + "/$cancel");
}

TEST_CASE("a waiter whose client hangs up returns its thread at once" * doctest::test_suite("concurrency")) {
    Service svc(ServiceOptions::examples({"demo.so"}).flags({"--max-waiters", "8", "--http-threads", "16"}));
    auto &cli = svc.cli();
    std::string id = submit(cli, "slow_task", {{"seconds", 60}});
    {
        std::vector<std::unique_ptr<RawConnection>> waiters;
        for (int i = 0; i < 8; ++i) {
            waiters.push_back(std::make_unique<RawConnection>(svc.host().port(), 5s));
            const std::string path = i % 2 ? "/api/v1/jobs/" + id + "?wait=60" : "/api/v1/jobs/" + id + "/$stream";
            waiters.back()->send("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        }
        REQUIRE(eventually([&] {
            auto sys = get_json(cli, "/api/v1/system");
            return sys["waiting_requests"] == 8;
        }));
    }  // every client closes its connection
    auto started = std::chrono::steady_clock::now();
    CHECK(eventually([&] { return get_json(cli, "/api/v1/system")["waiting_requests"] == 0; }, 2000ms));
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    // And the places are free again.
    auto again = cli.Get("/api/v1/jobs/" + id + "?wait=0.1");
    CHECK_STATUS(again, 200);
    cli.Post("/api/v1/jobs/" + id + "/$cancel");
}

TEST_CASE("ambiguous framing is refused with 400 and the connection closed; nothing runs") {
    Service svc(ServiceOptions::examples({"math.so"}));
    auto &cli = svc.cli();
    const size_t jobs_before = job_count(cli);
    const int port = svc.host().port();
    const std::string json_type = "Content-Type: application/json\r\n";
    const std::string chunked_body = hex(add_body.size()) + "\r\n" + add_body + "\r\n0\r\n\r\n";
    struct Case {
        std::string name, request;
        int status;
    };
    const std::string length = "Content-Length: " + std::to_string(add_body.size()) + "\r\n";
    const std::vector<Case> cases = {
        {"Content-Length and Transfer-Encoding",
         execute_head + json_type + length + "Transfer-Encoding: chunked\r\n\r\n" + add_body, 400},
        {"two different Content-Lengths",
         execute_head + json_type + length + "Content-Length: 5\r\n\r\n" + add_body, 400},
        {"two equal Content-Lengths", execute_head + json_type + length + length + "\r\n" + add_body, 400},
        {"signed Content-Length", execute_head + json_type + "Content-Length: +" + std::to_string(add_body.size()) +
                                      "\r\n\r\n" + add_body,
         400},
        {"Content-Length with junk", execute_head + json_type + "Content-Length: 2abc\r\n\r\n" + add_body, 400},
        {"whitespace before the colon",
         execute_head + json_type + "Transfer-Encoding : chunked\r\n\r\n" + chunked_body, 400},
        {"obsolete line folding", execute_head + json_type + "X-Folded: a\r\n b\r\n" + length + "\r\n" + add_body,
         400},
        {"bare LF line ends", "POST /api/v1/tasks/add/$execute HTTP/1.1\nHost: 127.0.0.1\n" + length + "\n" + add_body,
         400},
        {"unsupported transfer coding", execute_head + json_type + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"two Host fields", execute_head + "Host: other\r\n" + json_type + length + "\r\n" + add_body, 400},
        {"no Host field", "POST /api/v1/tasks/add/$execute HTTP/1.1\r\n" + json_type + length + "\r\n" + add_body,
         400},
    };
    for (const auto &c : cases) {
        CAPTURE(c.name);
        std::string answer = round_trip(port, c.request);
        CHECK(status_in(answer) == c.status);
        CHECK_CONTAINS(answer, "Connection: close");
        CHECK_CONTAINS(answer, "application/problem+json");
    }
    CHECK(job_count(cli) == jobs_before);
}

TEST_CASE("pipelined requests are all answered, in order" * doctest::test_suite("concurrency")) {
    Service svc(ServiceOptions::examples({"math.so"}));
    RawConnection conn(svc.host().port(), 5s);
    const std::string length = "Content-Length: " + std::to_string(add_body.size()) + "\r\n";
    conn.send("GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + execute_head +
              "Content-Type: application/json\r\n" + length + "\r\n" + add_body +
              "GET /api/v1/tasks/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + execute_head +
              "Content-Type: application/json\r\n" + length + "\r\n" + add_body);
    CHECK(conn.read_status() == 200);
    CHECK(conn.read_status() == 202);
    CHECK(conn.read_status() == 404);
    CHECK(conn.read_status() == 202);
    CHECK(job_count(svc.cli()) == 2);
}

TEST_CASE("a chunked request is the last on its connection: what follows it is never taken as a request") {
    Service svc(ServiceOptions::examples({"math.so"}));
    const std::string chunked_body = hex(add_body.size()) + "\r\n" + add_body + "\r\n0\r\n\r\n";
    // Both a well-formed body and one httplib's lenient decoder would end
    // early (junk after a chunk): neither lets the bytes after it through.
    for (const std::string &body : {chunked_body, std::string("1\r\n{ZZ3d\r\n")}) {
        std::string answer = round_trip(svc.host().port(), execute_head + "Content-Type: application/json\r\n" +
                                                               "Transfer-Encoding: chunked\r\n\r\n" + body +
                                                               "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK_CONTAINS(answer, "Connection: close");
        CHECK(answer.find("HTTP/1.1", 1) == std::string::npos);  // one answer only
    }
}

TEST_CASE("a request sent with the client's side closed at once is still answered") {
    Service svc(ServiceOptions::examples({"math.so"}));
    int fd = connect_to(svc.host().port());
    send_bytes(fd, "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    ::shutdown(fd, SHUT_WR);
    std::string answer;
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    while (::poll(&p, 1, 5000) > 0) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        answer.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    CHECK(status_in(answer) == 200);
}

}  // TEST_SUITE
