// taskhost-bench: a lean blocking HTTP/1.1 client for one keep-alive
// connection. Written for a load driver that shares two cores with the
// server it measures: one write() per request, one buffer reused for every
// response, no allocation per request once the buffers have grown, no
// header map (only the three headers a client needs are looked at).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bench {

struct Response {
    int status = 0;
    std::string body;
};

class Connection {
public:
    explicit Connection(uint16_t port, int timeout_s = 30);
    ~Connection();
    Connection(const Connection &) = delete;
    Connection &operator=(const Connection &) = delete;

    // Sends one request and reads its whole response into `out`. False on a
    // transport failure (connect, write, read, malformed response, timeout);
    // `error` then says which. A keep-alive connection the server closed
    // while idle is reopened and the request sent again, once: nothing was
    // processed in that case (no response byte arrived).
    bool request(std::string_view method, std::string_view target, std::string_view body, Response &out,
                 std::string *error = nullptr);
    bool get(std::string_view target, Response &out, std::string *error = nullptr) {
        return request("GET", target, {}, out, error);
    }
    bool post(std::string_view target, std::string_view body, Response &out, std::string *error = nullptr) {
        return request("POST", target, body, out, error);
    }

    bool connect(std::string *error = nullptr);
    void close();
    // Times the connection was (re)opened after its first connect.
    uint64_t reconnects() const { return reconnects_; }

private:
    bool send_all(const char *data, size_t len);
    // 1: a response was read; 0: the peer closed before any byte of it;
    // -1: failure (error set).
    int read_response(Response &out, std::string *error);
    // Makes sure rbuf_ holds at least `need` bytes from rpos_; false on EOF/error.
    bool fill(size_t need, std::string *error, bool *eof_clean = nullptr);

    uint16_t port_;
    int timeout_s_;
    int fd_ = -1;
    bool ever_connected_ = false;
    uint64_t reconnects_ = 0;
    std::string wbuf_;
    std::string rbuf_;
    size_t rpos_ = 0;  // start of unread data in rbuf_
    size_t rlen_ = 0;  // end of valid data in rbuf_
};

// Crude but allocation-free JSON field lookups for the hot loops (the host
// writes compact JSON; whitespace around ':' is tolerated). They return the
// raw value text: for a string, without the quotes; empty if absent.
std::string_view json_string_field(std::string_view body, std::string_view key);
bool json_field_is_null(std::string_view body, std::string_view key);

}  // namespace bench
