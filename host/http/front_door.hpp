// The front door: owns the listening socket and every connection that is
// not being served. One epoll thread accepts, reads request heads as they
// trickle in, and keeps idle keep-alive connections; a pool thread is taken
// only once a whole, well-framed head has arrived, and given back when the
// response is out. So slow or idle clients cost a socket and a small buffer,
// never a thread, and cpp-httplib's thread-per-connection model (with its
// 10 ms keep-alive polling) is out of the picture.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "http/connection.hpp"
#include "http/request_head.hpp"
#include "util/result.hpp"

namespace taskhost::http {

class ElasticPool;

struct FrontDoorLimits {
    HeadLimits head;
    std::chrono::milliseconds header_timeout{10000};      // a whole head must arrive within this
    std::chrono::milliseconds keep_alive_timeout{5000};   // an idle connection is closed after this
    std::chrono::milliseconds linger{2000};               // reading what a refused client still sends
    size_t max_connections = 4096;
    size_t max_requests_per_connection = 100000;
    StreamTimeouts stream;
};

class FrontDoor {
public:
    // Serves the request whose head `c` holds (its stream is positioned at
    // it); `last` asks for Connection: close. Returns whether the connection
    // may carry another request.
    using ServeRequest = std::function<bool(Connection &c, bool last)>;
    // A whole response (status line to body) refusing a request or a
    // connection with `status` and `detail`; `head` is what was received of
    // the request (possibly nothing, or not a whole head).
    using Refusal = std::function<std::string(int status, const std::string &detail, std::string_view head)>;

    FrontDoor(FrontDoorLimits limits, ElasticPool &pool, ServeRequest serve, Refusal refusal);
    ~FrontDoor();
    FrontDoor(const FrontDoor &) = delete;
    FrontDoor &operator=(const FrontDoor &) = delete;

    // Binds and listens; the port bound (useful with port 0).
    Result<int> listen(const std::string &host, int port, int backlog);
    // Runs the loop until stop(), then until every request being served has
    // been answered.
    void run();
    // Thread-safe; returns at once.
    void stop();

    size_t open_connections() const { return open_.load(std::memory_order_relaxed); }

private:
    struct Slot;
    enum class Next { park, linger, close };
    using Clock = std::chrono::steady_clock;

    void accept_all();
    void on_readable(Slot *s);
    void dispatch(Slot *s);
    void refuse(Slot *s, int status, const std::string &detail);
    void start_lingering(Slot *s);
    void serve(Slot *s);  // on a pool thread
    void hand_back(Slot *s, Next next);  // from a pool thread
    void take_back(Slot *s, Next next);  // on the loop thread
    void set_deadline(Slot *s, Clock::time_point when);
    void clear_deadline(Slot *s);
    void watch(Slot *s, int op, uint32_t events);
    void close_slot(Slot *s);
    void expire(Clock::time_point now);
    int wait_ms(Clock::time_point now) const;

    const FrontDoorLimits limits_;
    ElasticPool &pool_;
    const ServeRequest serve_;
    const Refusal refusal_;
    const uint64_t chunked_wire_limit_;
    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    int wake_fd_ = -1;
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> open_{0};
    // Loop thread only.
    std::map<Slot *, std::unique_ptr<Slot>> slots_;
    std::multimap<Clock::time_point, Slot *> deadlines_;
    size_t serving_ = 0;
    size_t lingering_ = 0;
    Clock::time_point accept_paused_until_{};
    bool accept_paused_ = false;
    // Connections pool threads are done with.
    std::mutex handed_back_mu_;
    std::vector<std::pair<Slot *, Next>> handed_back_;
};

}  // namespace taskhost::http
