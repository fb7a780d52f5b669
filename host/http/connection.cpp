#include "http/connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>

namespace taskhost::http {

namespace {
thread_local Connection *current = nullptr;
constexpr size_t read_chunk = 16 * 1024;
constexpr std::chrono::seconds body_time_limit{60};
}  // namespace

Connection *current_connection() { return current; }

std::pair<std::string, int> address_text(const sockaddr_storage &addr) {
    char text[INET6_ADDRSTRLEN] = "";
    if (addr.ss_family == AF_INET) {
        const auto *a = reinterpret_cast<const sockaddr_in *>(&addr);
        ::inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
        return {text, ntohs(a->sin_port)};
    }
    if (addr.ss_family == AF_INET6) {
        const auto *a = reinterpret_cast<const sockaddr_in6 *>(&addr);
        ::inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
        return {text, ntohs(a->sin6_port)};
    }
    return {"", 0};
}
CurrentConnection::CurrentConnection(Connection &c) { current = &c; }
CurrentConnection::~CurrentConnection() { current = nullptr; }

Connection::Connection(int fd, std::string peer_ip, int peer_port, StreamTimeouts timeouts)
    : fd_(fd), peer_ip_(std::move(peer_ip)), peer_port_(peer_port), timeouts_(timeouts) {}

Connection::~Connection() { ::close(fd_); }

ssize_t Connection::receive_available(size_t at_most) {
    compact();
    const size_t old = buffer_.size();
    buffer_.resize(old + at_most);
    ssize_t n;
    do n = ::recv(fd_, buffer_.data() + old, at_most, 0);
    while (n < 0 && errno == EINTR);
    buffer_.resize(old + static_cast<size_t>(n > 0 ? n : 0));
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
    return n;
}

void Connection::skip_leading_empty_lines() { consumed_ += leading_empty_lines(pending()); }

void Connection::compact() {
    if (consumed_ == 0) return;
    buffer_.erase(0, consumed_);
    consumed_ = 0;
}

void Connection::begin_request(const HeadVerdict &head, uint64_t max_chunked_wire_bytes) {
    head_left_ = head.head_bytes;
    body_ = head.body;
    body_read_ = 0;
    switch (body_.kind) {
        case BodyFraming::Kind::none: body_wire_limit_ = 0; break;
        case BodyFraming::Kind::length: body_wire_limit_ = body_.length; break;
        case BodyFraming::Kind::chunked: body_wire_limit_ = max_chunked_wire_bytes; break;
    }
    body_over_limit_ = false;
    body_deadline_ = std::chrono::steady_clock::now() + body_time_limit;
}

bool Connection::body_fully_read() const {
    if (head_left_ != 0) return false;  // the library refused the head part way
    switch (body_.kind) {
        case BodyFraming::Kind::none: return true;
        case BodyFraming::Kind::length: return body_read_ == body_.length;
        case BodyFraming::Kind::chunked: return false;
    }
    return false;
}

bool Connection::wait_for(short events, std::chrono::milliseconds timeout) const {
    pollfd p{fd_, events, 0};
    int n;
    do n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    while (n < 0 && errno == EINTR);
    return n > 0 && (p.revents & events);
}

bool Connection::is_readable() const {
    return consumed_ < buffer_.size() || wait_for(POLLIN, timeouts_.read);
}

bool Connection::is_writable() const {
    // A client that hung up cannot take more of a stream.
    if (hangup_.stop_requested()) return false;
    return wait_for(POLLOUT, timeouts_.write);
}

ssize_t Connection::read(char *ptr, size_t size) {
    // The head first, then as much body as its framing allows: never a byte
    // of the next request.
    size_t allowed = size;
    if (head_left_ == 0) {
        const uint64_t left = body_wire_limit_ - std::min(body_wire_limit_, body_read_);
        if (left == 0) {
            if (body_.kind == BodyFraming::Kind::chunked) body_over_limit_ = true;
            return body_.kind == BodyFraming::Kind::length ? 0 : -1;
        }
        allowed = static_cast<size_t>(std::min<uint64_t>(allowed, left));
        // A body trickled in a byte every few seconds would hold a thread
        // for days: the whole of it must arrive within the limit.
        if (std::chrono::steady_clock::now() > body_deadline_) return -1;
    }
    if (consumed_ == buffer_.size()) {
        compact();
        if (!wait_for(POLLIN, timeouts_.read)) return -1;
        if (receive_available(read_chunk) <= 0) return -1;
    }
    size_t n = std::min(allowed, buffer_.size() - consumed_);
    if (head_left_ > 0) n = std::min(n, head_left_);
    std::memcpy(ptr, buffer_.data() + consumed_, n);
    consumed_ += n;
    if (head_left_ > 0) head_left_ -= n;
    else body_read_ += n;
    return static_cast<ssize_t>(n);
}

ssize_t Connection::write(const char *ptr, size_t size) {
    for (;;) {
        const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wait_for(POLLOUT, timeouts_.write)) return -1;
    }
}

bool Connection::write_all(std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = write(data.data(), data.size());
        if (n <= 0) return false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

bool Connection::write_now(std::string_view data) {
    ssize_t n;
    do n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(data.size());
}

void Connection::get_remote_ip_and_port(std::string &ip, int &port) const {
    ip = peer_ip_;
    port = peer_port_;
}

void Connection::get_local_ip_and_port(std::string &ip, int &port) const {
    if (local_port_ < 0) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        local_port_ = 0;
        if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
            std::tie(local_ip_, local_port_) = address_text(addr);
    }
    ip = local_ip_;
    port = local_port_;
}

}  // namespace taskhost::http
