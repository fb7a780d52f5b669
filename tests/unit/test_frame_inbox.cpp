// exec::worker::FrameInbox: the host's buffered reader of a worker's frames.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include "exec/worker_protocol.hpp"

using namespace taskhost::exec::worker;

namespace {

// Both ends of a stream socketpair, closed at the end.
struct Channel {
    int fd[2] = {-1, -1};
    Channel() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) == 0); }
    ~Channel() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void send(std::string_view bytes) { REQUIRE(write_all(fd[1], bytes)); }
    void close_writer() {
        ::close(fd[1]);
        fd[1] = -1;
    }
};

std::string frame(FrameType type, std::string_view field) {
    FrameWriter f(type);
    f.str(field);
    return f.finish();
}

}  // namespace

TEST_SUITE("frame inbox") {

TEST_CASE("several frames sent at once: one read takes them, the rest need no wait") {
    Channel c;
    FrameInbox inbox(1024);
    CHECK_FALSE(inbox.has_frame());
    c.send(frame(FrameType::notice, "result") + frame(FrameType::done, "end"));
    std::string error;
    auto first = inbox.read(c.fd[0], &error);
    REQUIRE(first);
    CHECK(first->type == FrameType::notice);
    CHECK(FrameReader(first->body).str() == "result");
    // The second came with the first: read() will not block for it.
    CHECK(inbox.has_frame());
    auto second = inbox.read(c.fd[0], &error);
    REQUIRE(second);
    CHECK(second->type == FrameType::done);
    CHECK_FALSE(inbox.has_frame());
}

TEST_CASE("a frame in pieces, and one larger than the buffer, arrive whole") {
    Channel c;
    FrameInbox inbox(1u << 20);
    const std::string whole = frame(FrameType::notice, "split across writes");
    c.send(whole.substr(0, 3));
    CHECK_FALSE(inbox.has_frame());
    c.send(whole.substr(3));
    std::string error;
    auto split = inbox.read(c.fd[0], &error);
    REQUIRE(split);
    CHECK(FrameReader(split->body).str() == "split across writes");
    // 200 KiB: more than the 64 KiB buffer, read straight into its frame
    // (sent from another thread: the socket holds less than that).
    const std::string big(200 * 1024, 'x');
    const std::string big_frame = frame(FrameType::notice, big);
    std::thread writer([&] { CHECK(write_all(c.fd[1], big_frame)); });
    auto large = inbox.read(c.fd[0], &error);
    writer.join();
    REQUIRE(large);
    CHECK(FrameReader(large->body).str() == big);
}

TEST_CASE("a header over max_body is refused at once; a cut-short frame at the end is an error") {
    {
        Channel c;
        FrameInbox inbox(16);
        c.send(frame(FrameType::notice, std::string(64, 'x')));
        // Not a frame to wait for: read() refuses it without blocking.
        CHECK(inbox.has_frame() == false);  // nothing read from the socket yet
        std::string error;
        CHECK_FALSE(inbox.read(c.fd[0], &error));
        CHECK(error == "a frame of 68 bytes, more than 16");
        CHECK(inbox.has_frame());  // the refused header stays: every read refuses it
    }
    {
        Channel c;
        FrameInbox inbox(1024);
        c.send(frame(FrameType::done, "whole").substr(0, 7));
        c.close_writer();
        std::string error;
        CHECK_FALSE(inbox.read(c.fd[0], &error));
        CHECK(error == "the channel closed");
    }
}

}  // TEST_SUITE("frame inbox")
