#include "client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace bench {

namespace {

constexpr size_t kMinRoom = 16 * 1024;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

void set_error(std::string *error, std::string_view what) {
    if (error) error->assign(what);
}

}  // namespace

Connection::Connection(uint16_t port, int timeout_s) : port_(port), timeout_s_(timeout_s) {
    rbuf_.resize(64 * 1024);
    wbuf_.reserve(512);
}

Connection::~Connection() { close(); }

void Connection::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    rpos_ = rlen_ = 0;
}

bool Connection::connect(std::string *error) {
    close();
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_error(error, "socket: " + std::string(std::strerror(errno)));
        return false;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{};
    tv.tv_sec = timeout_s_;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        set_error(error, "connect: " + std::string(std::strerror(errno)));
        ::close(fd);
        return false;
    }
    fd_ = fd;
    if (ever_connected_) ++reconnects_;
    ever_connected_ = true;
    return true;
}

bool Connection::send_all(const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool Connection::fill(size_t need, std::string *error, bool *eof_clean) {
    if (eof_clean) *eof_clean = false;
    while (rlen_ - rpos_ < need) {
        if (rbuf_.size() - rlen_ < kMinRoom || rbuf_.size() - rpos_ < need) {
            // Compact first; grow only if that is not enough.
            if (rpos_ > 0) {
                std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rlen_ - rpos_);
                rlen_ -= rpos_;
                rpos_ = 0;
            }
            size_t want = std::max(need, rlen_) + kMinRoom;
            if (rbuf_.size() < want) rbuf_.resize(std::max(want, rbuf_.size() * 2));
        }
        ssize_t n = ::recv(fd_, rbuf_.data() + rlen_, rbuf_.size() - rlen_, 0);
        if (n > 0) {
            rlen_ += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            if (eof_clean) *eof_clean = true;
            set_error(error, "connection closed by the server");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            set_error(error, "timeout waiting for the response");
        } else {
            set_error(error, "recv: " + std::string(std::strerror(errno)));
        }
        return false;
    }
    return true;
}

int Connection::read_response(Response &out, std::string *error) {
    // Header block.
    size_t scanned = 0;
    size_t header_end = 0;
    for (;;) {
        std::string_view avail(rbuf_.data() + rpos_, rlen_ - rpos_);
        size_t from = scanned >= 3 ? scanned - 3 : 0;
        size_t pos = avail.find("\r\n\r\n", from);
        if (pos != std::string_view::npos) {
            header_end = pos + 4;
            break;
        }
        scanned = avail.size();
        if (avail.size() > 64 * 1024) {
            set_error(error, "response header too large");
            return -1;
        }
        bool eof = false;
        if (!fill(avail.size() + 1, error, &eof)) return (eof && avail.empty()) ? 0 : -1;
    }
    std::string_view head(rbuf_.data() + rpos_, header_end);
    // Status line: HTTP/1.1 200 OK
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") {
        set_error(error, "malformed status line");
        return -1;
    }
    size_t sp = head.find(' ');
    int status = 0;
    auto [p, ec] = std::from_chars(head.data() + sp + 1, head.data() + head.size(), status);
    if (ec != std::errc() || status < 100 || status > 999) {
        set_error(error, "malformed status code");
        return -1;
    }
    (void)p;
    out.status = status;
    bool has_length = false, chunked = false, close_after = false;
    size_t length = 0;
    size_t line_start = head.find("\r\n") + 2;
    while (line_start < head.size()) {
        size_t line_end = head.find("\r\n", line_start);
        if (line_end == std::string_view::npos || line_end == line_start) break;
        std::string_view line = head.substr(line_start, line_end - line_start);
        line_start = line_end + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon);
        std::string_view value = trim(line.substr(colon + 1));
        if (iequals(name, "content-length")) {
            auto [q, e2] = std::from_chars(value.data(), value.data() + value.size(), length);
            (void)q;
            if (e2 != std::errc()) {
                set_error(error, "malformed Content-Length");
                return -1;
            }
            has_length = true;
        } else if (iequals(name, "transfer-encoding")) {
            chunked = value.find("chunked") != std::string_view::npos;
        } else if (iequals(name, "connection")) {
            close_after = iequals(value, "close");
        }
    }
    rpos_ += header_end;

    out.body.clear();
    const bool no_body = status < 200 || status == 204 || status == 304;
    if (no_body) {
    } else if (chunked) {
        for (;;) {
            // chunk-size [;ext] CRLF data CRLF ... 0 CRLF [trailers] CRLF
            size_t crlf;
            for (;;) {
                std::string_view avail(rbuf_.data() + rpos_, rlen_ - rpos_);
                crlf = avail.find("\r\n");
                if (crlf != std::string_view::npos) break;
                if (!fill(avail.size() + 1, error)) return -1;
            }
            size_t size = 0;
            auto [q, e3] = std::from_chars(rbuf_.data() + rpos_, rbuf_.data() + rpos_ + crlf, size, 16);
            (void)q;
            if (e3 != std::errc()) {
                set_error(error, "malformed chunk size");
                return -1;
            }
            rpos_ += crlf + 2;
            if (size == 0) {
                // Trailers (none expected) end with an empty line.
                for (;;) {
                    if (!fill(2, error)) return -1;
                    std::string_view avail(rbuf_.data() + rpos_, rlen_ - rpos_);
                    size_t e = avail.find("\r\n");
                    if (e == std::string_view::npos) {
                        if (!fill(avail.size() + 1, error)) return -1;
                        continue;
                    }
                    rpos_ += e + 2;
                    if (e == 0) break;
                }
                break;
            }
            if (!fill(size + 2, error)) return -1;
            out.body.append(rbuf_.data() + rpos_, size);
            rpos_ += size + 2;
        }
    } else if (has_length) {
        if (!fill(length, error)) return -1;
        out.body.assign(rbuf_.data() + rpos_, length);
        rpos_ += length;
    } else {
        // Body until the server closes.
        for (;;) {
            bool eof = false;
            if (!fill(rlen_ - rpos_ + 1, nullptr, &eof)) break;
        }
        out.body.assign(rbuf_.data() + rpos_, rlen_ - rpos_);
        rpos_ = rlen_;
        close_after = true;
    }
    if (rpos_ == rlen_) rpos_ = rlen_ = 0;
    if (close_after) close();
    return 1;
}

bool Connection::request(std::string_view method, std::string_view target, std::string_view body, Response &out,
                         std::string *error) {
    wbuf_.clear();
    wbuf_.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if (!body.empty() || method == "POST" || method == "PUT") {
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof digits, body.size());
        (void)ec;
        wbuf_.append("Content-Type: application/json\r\nContent-Length: ");
        wbuf_.append(digits, static_cast<size_t>(end - digits));
        wbuf_.append("\r\n");
    }
    wbuf_.append("\r\n");
    wbuf_.append(body);

    for (int attempt = 0; attempt < 2; ++attempt) {
        bool fresh = false;
        if (fd_ < 0) {
            if (!connect(error)) return false;
            fresh = true;
        }
        if (!send_all(wbuf_.data(), wbuf_.size())) {
            std::string why = "send: " + std::string(std::strerror(errno));
            close();
            if (!fresh && attempt == 0) continue;
            set_error(error, why);
            return false;
        }
        int r = read_response(out, error);
        if (r == 1) return true;
        close();
        if (r == 0 && !fresh && attempt == 0) continue;  // idle keep-alive closed by the server
        return false;
    }
    return false;
}

// ---- tiny JSON field lookups ---------------------------------------------

namespace {

// Position just after `"key":` (whitespace skipped), or npos.
size_t value_start(std::string_view body, std::string_view key) {
    size_t from = 0;
    for (;;) {
        size_t k = body.find(key, from);
        if (k == std::string_view::npos) return k;
        from = k + key.size();
        if (k == 0 || body[k - 1] != '"' || from >= body.size() || body[from] != '"') continue;
        size_t i = from + 1;
        while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\t' || body[i] == '\r')) ++i;
        if (i >= body.size() || body[i] != ':') continue;
        ++i;
        while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\t' || body[i] == '\r')) ++i;
        return i;
    }
}

}  // namespace

std::string_view json_string_field(std::string_view body, std::string_view key) {
    size_t i = value_start(body, key);
    if (i == std::string_view::npos || i >= body.size()) return {};
    if (body[i] == '"') {
        size_t j = i + 1;
        while (j < body.size() && body[j] != '"') j += body[j] == '\\' ? 2 : 1;
        if (j >= body.size()) return {};
        return body.substr(i + 1, j - i - 1);
    }
    size_t j = i;
    while (j < body.size() && body[j] != ',' && body[j] != '}' && body[j] != ']') ++j;
    return trim(body.substr(i, j - i));
}

bool json_field_is_null(std::string_view body, std::string_view key) {
    size_t i = value_start(body, key);
    return i != std::string_view::npos && body.substr(i, 4) == "null";
}

}  // namespace bench
