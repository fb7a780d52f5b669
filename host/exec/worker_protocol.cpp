#include "exec/worker_protocol.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace taskhost::exec::worker {

namespace {

// Reads exactly n bytes; false at EOF or on an error.
bool read_exactly(int fd, char *into, size_t n, std::string *error) {
    size_t done = 0;
    while (done < n) {
        const ssize_t got = ::recv(fd, into + done, n - done, MSG_WAITALL);
        if (got > 0) {
            done += static_cast<size_t>(got);
            continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (error) *error = got == 0 ? "the channel closed" : std::string("recv: ") + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        // MSG_NOSIGNAL: a peer that died is an answer, not a SIGPIPE.
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::optional<Frame> read_frame(int fd, size_t max_body, std::string *error) {
    char header[frame_header_size];
    if (!read_exactly(fd, header, sizeof header, error)) return std::nullopt;
    uint32_t length = 0;
    std::memcpy(&length, header, sizeof length);
    if (length > max_body) {
        if (error) *error = "a frame of " + std::to_string(length) + " bytes, more than " + std::to_string(max_body);
        return std::nullopt;
    }
    Frame frame;
    frame.type = static_cast<FrameType>(static_cast<uint8_t>(header[4]));
    frame.body.resize(length);
    if (length > 0 && !read_exactly(fd, frame.body.data(), length, error)) return std::nullopt;
    return frame;
}

}  // namespace taskhost::exec::worker
