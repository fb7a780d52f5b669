#include "store/postgres/listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include "store/postgres/connection.hpp"
#include "store/postgres/job_sql.hpp"
#include "util/thread_name.hpp"

namespace taskhost::store::postgres {

namespace {

// How long to wait before connecting again after the connection failed.
constexpr int kRetryMs = 1000;

}  // namespace

Listener::Listener(std::string url, const Reporter &report) : url_(std::move(url)), report_(report) {
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    // Listening before this returns: a notice sent right after is heard.
    std::unique_ptr<Connection> conn;
    try {
        conn = listening_connection();
    } catch (const std::exception &e) {
        report_(std::string("fleet notices: cannot listen yet: ") + e.what());  // the thread tries again
    }
    thread_ = std::thread([this, first = std::move(conn)]() mutable { run(std::move(first)); });
}

std::unique_ptr<Connection> Listener::listening_connection() {
    auto conn = std::make_unique<Connection>(url_, /*durable_commits=*/false);  // LISTEN only
    conn->exec("LISTEN taskhost");
    return conn;
}

Listener::~Listener() {
    const char byte = 0;
    while (::write(wake_[1], &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void Listener::set(Store::FleetEvents events) {
    std::lock_guard lock(events_mu_);
    events_ = std::move(events);
}

void Listener::dispatch(std::string_view payload) {
    received_.fetch_add(1);
    if (payload.size() < 2 || payload[1] != ':') return;  // not one of ours
    const char kind = payload[0];
    payload.remove_prefix(2);
    std::lock_guard lock(events_mu_);
    try {
        if (kind == 'w') {
            if (events_.work_available) events_.work_available();
            return;
        }
        const auto &each = kind == 'j' ? events_.job_changed : kind == 'c' ? events_.cancel_asked : nullptr;
        if (!each) return;
        while (!payload.empty()) {
            const size_t comma = payload.find(',');
            each(std::string(payload.substr(0, comma)));
            payload.remove_prefix(comma == std::string_view::npos ? payload.size() : comma + 1);
        }
    } catch (const std::exception &e) {
        report_(std::string("fleet notices: a callback failed: ") + e.what());
    }
}

void Listener::cancel_asked(const std::string &id) {
    std::lock_guard lock(events_mu_);
    try {
        if (events_.cancel_asked) events_.cancel_asked(id);
    } catch (const std::exception &e) {
        report_(std::string("fleet notices: a callback failed: ") + e.what());
    }
}

void Listener::run(std::unique_ptr<Connection> conn) {
    name_this_thread("th-listen");
    bool failing = !conn;
    for (;;) {
        int wait_ms = -1;
        if (!conn) {
            try {
                conn = listening_connection();
                if (failing) report_("fleet notices: listening again");
                failing = false;
                // Notices sent meanwhile are lost: whatever waits for work
                // looks now.
                std::lock_guard lock(events_mu_);
                if (events_.work_available) events_.work_available();
            } catch (const std::exception &e) {
                if (!failing) report_(std::string("fleet notices: cannot listen: ") + e.what());
                failing = true;
                conn.reset();
                wait_ms = kRetryMs;
            }
        }
        pollfd fds[2] = {{wake_[0], POLLIN, 0}, {conn ? PQsocket(conn->handle()) : -1, POLLIN, 0}};
        const int n = ::poll(fds, conn ? 2 : 1, wait_ms);
        if (n < 0 && errno != EINTR) {
            report_(std::string("fleet notices: poll failed, no longer listening: ") + std::strerror(errno));
            return;
        }
        if (fds[0].revents != 0) return;
        if (!conn || fds[1].revents == 0) continue;
        if (PQconsumeInput(conn->handle()) == 0 || conn->broken()) {
            if (!failing) report_(std::string("fleet notices: connection lost: ") + PQerrorMessage(conn->handle()));
            failing = true;
            conn.reset();
            continue;
        }
        while (PGnotify *notice = PQnotifies(conn->handle())) {
            dispatch(notice->extra != nullptr ? std::string_view(notice->extra) : std::string_view());
            PQfreemem(notice);
        }
    }
}

}  // namespace taskhost::store::postgres
