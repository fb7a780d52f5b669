// One client connection as the front door keeps it: the socket, the bytes
// received but not yet consumed (the rest of a head, a pipelined request),
// and the httplib::Stream the library reads one request from. The stream
// serves exactly the current request's bytes in the order received, so
// pipelined requests are answered in order, and it bounds how much of a
// chunked body may be read.
#pragma once

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <string>

#include <poll.h>
#include <sys/socket.h>

#include <utility>

#include <httplib.h>

#include "http/request_head.hpp"

namespace taskhost::http {

struct StreamTimeouts {
    std::chrono::milliseconds read{5000};   // one read while a request is being served
    std::chrono::milliseconds write{5000};  // one write of a response
};

class Connection final : public httplib::Stream {
public:
    Connection(int fd, std::string peer_ip, int peer_port, StreamTimeouts timeouts);
    ~Connection() override;  // closes the socket
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    int fd() const { return fd_; }
    // Bytes received and not yet consumed by a request.
    std::string_view pending() const { return std::string_view(buffer_).substr(consumed_); }
    // Gives the buffer's memory back when nothing is pending (a parked or
    // lingering connection keeps none).
    void release_idle_buffer() {
        if (consumed_ == buffer_.size()) {
            std::string().swap(buffer_);
            consumed_ = 0;
        }
    }
    // Reads what the socket has without waiting (the socket is non-blocking):
    // the bytes read, 0 at end of stream, -1 on error, -2 if nothing is there.
    ssize_t receive_available(size_t at_most);
    void discard_pending() {
        buffer_.clear();
        consumed_ = 0;
    }
    // Drops empty lines before a request line (RFC 9112 2.2).
    void skip_leading_empty_lines();

    // The next request's head has been checked: serve it to the library.
    void begin_request(const HeadVerdict &head, uint64_t max_chunked_wire_bytes);
    // After the library is done with the request: whether exactly its head
    // and body were read, so the connection can carry another request. Never
    // after a chunked body: cpp-httplib's chunk decoder is lenient (junk
    // after a size, a missing CRLF ends the body early) and a proxy in front
    // may decode the same bytes differently, so a chunked request is the
    // last on its connection.
    bool body_fully_read() const;
    bool body_over_limit() const { return body_over_limit_; }
    const BodyFraming &body() const { return body_; }

    // Keep-alive decisions taken while the request is served.
    void close_after_response() { close_after_ = true; }
    bool closing() const { return close_after_; }
    size_t requests_served = 0;

    // Stopped when the client hangs up (the front door watches the socket
    // while a request is served); waits in handlers take its token.
    std::stop_token hangup_token() const { return hangup_.get_token(); }
    void hung_up() { hangup_.request_stop(); }

    // Whether bytes are buffered or arrive within `timeout`.
    bool wait_readable(std::chrono::milliseconds timeout) const {
        return consumed_ < buffer_.size() || wait_for(POLLIN, timeout);
    }
    // Writes all of `data` within the write timeout; false if it could not.
    bool write_all(std::string_view data);
    // Writes what the socket takes without waiting; false if not all of it.
    bool write_now(std::string_view data);

    // httplib::Stream
    bool is_readable() const override;
    bool is_writable() const override;
    ssize_t read(char *ptr, size_t size) override;
    ssize_t write(const char *ptr, size_t size) override;
    void get_remote_ip_and_port(std::string &ip, int &port) const override;
    void get_local_ip_and_port(std::string &ip, int &port) const override;
    int socket() const override { return fd_; }

private:
    // Waits up to `timeout` for `events` on the socket; false on timeout or error.
    bool wait_for(short events, std::chrono::milliseconds timeout) const;
    void compact();

    const int fd_;
    const std::string peer_ip_;
    const int peer_port_;
    mutable std::string local_ip_;
    mutable int local_port_ = -1;
    const StreamTimeouts timeouts_;
    std::string buffer_;
    size_t consumed_ = 0;
    // The current request.
    size_t head_left_ = 0;   // head bytes the library has not read yet
    BodyFraming body_;
    uint64_t body_read_ = 0;  // body bytes read off the wire (chunk framing included)
    uint64_t body_wire_limit_ = 0;
    std::chrono::steady_clock::time_point body_deadline_{};
    bool body_over_limit_ = false;
    bool close_after_ = false;
    std::stop_source hangup_;
};

// "127.0.0.1" and 8000 from an IPv4 or IPv6 socket address.
std::pair<std::string, int> address_text(const sockaddr_storage &addr);

// The connection whose request this thread is serving, or null.
Connection *current_connection();
class CurrentConnection {
public:
    explicit CurrentConnection(Connection &c);
    ~CurrentConnection();
    CurrentConnection(const CurrentConnection &) = delete;
    CurrentConnection &operator=(const CurrentConnection &) = delete;
};

}  // namespace taskhost::http
