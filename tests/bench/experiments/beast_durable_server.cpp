// An experiment, not part of taskhost (issue 5): what an event-driven HTTP
// layer would give. Boost.Beast on Asio, with the durable part of taskhost's
// one-request path: each job's row and its result artifact's row (same
// schema) are committed by one writer thread in group commits (SQLite WAL,
// synchronous=NORMAL) before the answer. No thread waits per request: the
// connection resumes when its commit has landed.
//
// It does less than taskhost (no task call, no validation, a fixed answer,
// SQLite's own checkpoints), so its figures bound from above what such a
// layer could reach. It speaks just enough of the API for taskhost-bench,
// which starts it in place of taskhost with `--binary` (tests/bench/README.md).
#include <sqlite3.h>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <utility>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Unique 26-character ids (not ULIDs: enough for primary keys here).
static std::string make_id() {
    static std::atomic<uint64_t> n{0};
    char buf[32];
    std::snprintf(buf, sizeof buf, "01K%023llu", static_cast<unsigned long long>(n.fetch_add(1)));
    return std::string(buf, 26);
}

struct Write {
    std::string job_id, artifact_id, artifact_data, status;
    std::function<void()> done;
};

class Writer {
public:
    explicit Writer(const std::string &path) {
        sqlite3_open(path.c_str(), &db_);
        exec("PRAGMA journal_mode=WAL");
        exec("PRAGMA synchronous=NORMAL");
        exec(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY NOT NULL, task_name TEXT NOT NULL, params TEXT NOT "
            "NULL,"
            " status TEXT NOT NULL, submitted_at INTEGER, started_at INTEGER, finished_at INTEGER, error TEXT,"
            " error_traceback TEXT, artifact_id TEXT, progress REAL, progress_message TEXT NOT NULL DEFAULT '',"
            " timeout_s REAL) WITHOUT ROWID");
        exec("CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)");
        exec(
            "CREATE TABLE IF NOT EXISTS artifacts (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, parent_id TEXT,"
            " level INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',"
            " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)");
        sqlite3_prepare_v2(db_,
                           "INSERT INTO jobs (id, task_name, params, status, submitted_at, started_at, finished_at,"
                           " artifact_id, progress) VALUES (?1, 'hello', '{}', ?2, 1, 2, 3, ?3, 1.0)",
                           -1, &ins_job_, nullptr);
        sqlite3_prepare_v2(db_, "INSERT INTO artifacts (id, data, created_at, updated_at) VALUES (?1, ?2, 3, 3)", -1,
                           &ins_art_, nullptr);
        thread_ = std::thread([this] { run(); });
    }
    ~Writer() {
        {
            std::lock_guard l(mu_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }
    void post(Write w) {
        bool wake;
        {
            std::lock_guard l(mu_);
            q_.push_back(std::move(w));
            wake = sleeping_;
            sleeping_ = false;
        }
        if (wake) cv_.notify_one();
    }

private:
    void exec(const char *sql) { sqlite3_exec(db_, sql, nullptr, nullptr, nullptr); }
    void run() {
        std::deque<Write> batch;
        for (;;) {
            {
                std::unique_lock l(mu_);
                while (q_.empty() && !stop_) {
                    sleeping_ = true;
                    cv_.wait(l);
                }
                if (q_.empty()) return;
                batch.swap(q_);
            }
            exec("BEGIN");
            for (auto &w : batch) {
                sqlite3_bind_text(ins_job_, 1, w.job_id.data(), (int)w.job_id.size(), SQLITE_STATIC);
                sqlite3_bind_text(ins_job_, 2, w.status.data(), (int)w.status.size(), SQLITE_STATIC);
                sqlite3_bind_text(ins_job_, 3, w.artifact_id.data(), (int)w.artifact_id.size(), SQLITE_STATIC);
                sqlite3_step(ins_job_);
                sqlite3_reset(ins_job_);
                sqlite3_bind_text(ins_art_, 1, w.artifact_id.data(), (int)w.artifact_id.size(), SQLITE_STATIC);
                sqlite3_bind_text(ins_art_, 2, w.artifact_data.data(), (int)w.artifact_data.size(), SQLITE_STATIC);
                sqlite3_step(ins_art_);
                sqlite3_reset(ins_art_);
            }
            exec("COMMIT");
            commits_++;
            for (auto &w : batch) w.done();
            batch.clear();
        }
    }
    sqlite3 *db_ = nullptr;
    sqlite3_stmt *ins_job_ = nullptr, *ins_art_ = nullptr;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Write> q_;
    bool sleeping_ = false, stop_ = false;
    std::thread thread_;

public:
    std::atomic<uint64_t> commits_{0};
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket s, Writer &w) : stream_(std::move(s)), writer_(w) {}
    void start() { read(); }

private:
    void read() {
        req_ = {};
        http::async_read(stream_, buf_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return;
            self->handle();
        });
    }
    void reply(unsigned status, std::string body) {
        res_ = {};
        res_.result(status);
        res_.version(11);
        res_.keep_alive(req_.keep_alive());
        res_.set(http::field::content_type, "application/json");
        res_.body() = std::move(body);
        res_.prepare_payload();
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
            if (ec) return;
            if (!self->res_.keep_alive()) return;
            self->read();
        });
    }
    void handle() {
        beast::string_view target = req_.target();
        if (target == "/ping")
            return reply(200, R"({"status":"ok","service":"taskhost","message":"pong, no work done"})");
        if (target.starts_with("/api/v1/system")) return reply(200, R"({"jobs_queued":0,"jobs_running":0})");
        if (target.starts_with("/api/v1/tasks/hello/$execute")) {
            const bool wait = target.find("wait=") != beast::string_view::npos;
            Write w;
            w.job_id = make_id();
            w.artifact_id = make_id();
            w.status = "completed";
            w.artifact_data = R"({"task_name":"hello","params":{},"result":{"message":"Hello, World!"},"error":null})";
            std::string body;
            if (wait) {
                body = R"({"id":")" + w.job_id +
                       R"(","task_name":"hello","status":"completed","submitted_at":"2026-12-01T20:55:06.646158Z",)"
                       R"("started_at":"2026-12-01T20:55:06.646158Z","finished_at":"2026-12-01T20:55:06.646158Z",)"
                       R"("error":null,"error_traceback":null,"artifact_id":")" +
                       w.artifact_id + R"(","result":")" + w.artifact_id +
                       R"(","progress":1.0,"progress_message":"","timeout_s":0,"cancel_requested":false,)"
                       R"("artifact":{"id":")" +
                       w.artifact_id +
                       R"(","created_at":"2026-12-01T20:55:06.646158Z","updated_at":"2026-12-01T20:55:06.646158Z",)"
                       R"("tags":[],"data":)" +
                       w.artifact_data + R"(,"parent_id":null,"level":0}})";
            } else {
                body = R"({"job_id":")" + w.job_id + R"(","message":"Task 'hello' submitted for execution. Job ID: )" +
                       w.job_id + R"("})";
            }
            const unsigned status = wait ? 200 : 202;
            auto self = shared_from_this();
            auto ex = stream_.get_executor();
            w.done = [self, ex, status, body = std::move(body)]() mutable {
                asio::post(ex,
                           [self, status, body = std::move(body)]() mutable { self->reply(status, std::move(body)); });
            };
            writer_.post(std::move(w));
            return;
        }
        reply(404, R"({"detail":"not found"})");
    }

    beast::tcp_stream stream_;
    Writer &writer_;
    beast::flat_buffer buf_;
    http::request<http::string_body> req_;
    http::response<http::string_body> res_;
};

int main(int argc, char **argv) {
    std::string db = "spike.db";
    int threads = 2;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--db") == 0) db = argv[i + 1];
        if (std::strcmp(argv[i], "--io-threads") == 0) threads = std::atoi(argv[i + 1]);
    }
    Writer writer(db);
    asio::io_context ioc(threads);
    tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    std::function<void()> accept = [&] {
        acceptor.async_accept(asio::make_strand(ioc), [&](beast::error_code ec, tcp::socket s) {
            if (!ec) {
                s.set_option(tcp::no_delay(true));
                std::make_shared<Session>(std::move(s), writer)->start();
            }
            accept();
        });
    };
    accept();
    std::printf("taskhost listening on http://127.0.0.1:%d\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    asio::signal_set sigs(ioc, SIGTERM, SIGINT);
    sigs.async_wait([&](beast::error_code, int) { ioc.stop(); });
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto &t : pool) t.join();
}
