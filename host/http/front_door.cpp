#include "http/front_door.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "http/elastic_pool.hpp"
#include "util/thread_name.hpp"

namespace taskhost::http {

namespace {

constexpr size_t receive_chunk = 16 * 1024;
// Bytes of chunk framing allowed on top of the body limit (chunk sizes,
// extensions, CRLFs): a body sent in tiny chunks is still accepted, a chunk
// line that never ends is not.
constexpr uint64_t chunk_framing_allowance = 64 * 1024;
// How long a pool thread waits for a kept-alive client's next request
// before giving the connection back to the loop.
constexpr std::chrono::milliseconds keep_alive_linger{2};
// epoll data for the two descriptors that are not connections.
char listener_tag, wake_tag;

}  // namespace

struct FrontDoor::Slot {
    enum class State { reading, serving, lingering };
    std::unique_ptr<Connection> conn;
    State state = State::reading;
    bool idle = false;  // parked after a response, no byte of the next request yet
    size_t line_bytes = 0;  // received of the head's current, unfinished line
    bool admitted = false;  // counted in open_ (not a refused or lingering one)
    bool timed = false;
    std::multimap<Clock::time_point, Slot *>::iterator deadline;
};

FrontDoor::FrontDoor(FrontDoorLimits limits, ElasticPool &pool, ServeRequest serve, Refusal refusal)
    : limits_(limits),
      pool_(pool),
      serve_(std::move(serve)),
      refusal_(std::move(refusal)),
      chunked_wire_limit_(limits.head.max_body_bytes * 2 + chunk_framing_allowance) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_tag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

FrontDoor::~FrontDoor() {
    slots_.clear();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    ::close(wake_fd_);
    ::close(epoll_fd_);
}

Result<int> FrontDoor::listen(const std::string &host, int port, int backlog) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo *found = nullptr;
    const std::string where = host + ":" + std::to_string(port);
    if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
        return fail(ErrorKind::unavailable, "cannot listen on " + where + ": " + ::gai_strerror(rc));
    std::string why = "no address";
    for (addrinfo *a = found; a; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        int yes = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) {
            listen_fd_ = fd;
            break;
        }
        why = std::strerror(errno);
        ::close(fd);
    }
    ::freeaddrinfo(found);
    if (listen_fd_ < 0) return fail(ErrorKind::unavailable, "cannot listen on " + where + ": " + why);
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    const int bound = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port
                                                       : reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &listener_tag;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    return bound;
}

void FrontDoor::stop() {
    stopping_ = true;
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void FrontDoor::run() {
    name_this_thread("th-http-door");
    std::vector<epoll_event> events(256);
    bool closed_for_stop = false;
    for (;;) {
        if (stopping_ && !closed_for_stop) {
            // No new connections; idle and half-read ones close now; those
            // being served close when their response is out.
            closed_for_stop = true;
            if (listen_fd_ >= 0) {
                ::close(listen_fd_);
                listen_fd_ = -1;
            }
            accept_paused_ = false;
            std::vector<Slot *> waiting;
            for (auto &[s, owned] : slots_)
                if (s->state != Slot::State::serving) waiting.push_back(s);
            for (Slot *s : waiting) close_slot(s);
        }
        if (closed_for_stop && serving_ == 0) break;
        const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), wait_ms(Clock::now()));
        bool woken = false;
        for (int i = 0; i < n; ++i) {
            void *tag = events[i].data.ptr;
            if (tag == &listener_tag) {
                if (!stopping_) accept_all();
            } else if (tag == &wake_tag) {
                woken = true;
            } else {
                auto *s = static_cast<Slot *>(tag);
                if (s->state == Slot::State::serving) s->conn->hung_up();  // one-shot hang-up watch
                else on_readable(s);
            }
        }
        // Slots are closed only below or in on_readable (their own event),
        // so no event of this batch refers to a closed one.
        if (woken) {
            uint64_t count;
            [[maybe_unused]] auto r = ::read(wake_fd_, &count, sizeof count);
            std::vector<std::pair<Slot *, Next>> back;
            {
                std::lock_guard lock(handed_back_mu_);
                back.swap(handed_back_);
            }
            for (auto &[s, next] : back) take_back(s, next);
        }
        expire(Clock::now());
    }
}

int FrontDoor::wait_ms(Clock::time_point now) const {
    Clock::time_point next = Clock::time_point::max();
    if (!deadlines_.empty()) next = deadlines_.begin()->first;
    if (accept_paused_) next = std::min(next, accept_paused_until_);
    if (next == Clock::time_point::max()) return -1;
    if (next <= now) return 0;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
}

void FrontDoor::accept_all() {
    // A bounded batch per event: the listener stays readable, and a flood of
    // connections does not starve timers and hand-backs.
    for (int batch = 0; batch < 64; ++batch) {
        sockaddr_storage addr{};
        socklen_t len = sizeof addr;
        int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of
                // spinning on a listener that stays readable.
                spdlog::warn("cannot accept a connection: {}; pausing new connections for 100 ms",
                             std::strerror(errno));
                ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
                accept_paused_ = true;
                accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
            }
            return;
        }
        int yes = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
        auto [ip, port] = address_text(addr);
        auto owned = std::make_unique<Slot>();
        owned->conn = std::make_unique<Connection>(fd, std::move(ip), port, limits_.stream);
        Slot *s = owned.get();
        slots_.emplace(s, std::move(owned));
        if (open_.load(std::memory_order_relaxed) >= limits_.max_connections) {
            watch(s, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP);
            refuse(s, 503,
                   "The server has " + std::to_string(limits_.max_connections) +
                       " connections open, its limit (--max-connections); retry later");
            continue;
        }
        open_.fetch_add(1, std::memory_order_relaxed);
        s->admitted = true;
        // The first request's head must arrive within the header timeout of
        // the connection opening (a slow first byte buys no extra time).
        set_deadline(s, Clock::now() + limits_.header_timeout);
        watch(s, EPOLL_CTL_ADD, EPOLLIN | EPOLLRDHUP);
    }
}

void FrontDoor::on_readable(Slot *s) {
    Connection &c = *s->conn;
    if (s->state == Slot::State::lingering) {
        // Discard what the refused client still sends until it closes (a
        // bounded amount per event; level-triggered epoll brings it back).
        for (int batch = 0; batch < 16; ++batch) {
            ssize_t n = c.receive_available(receive_chunk);
            if (n == -2) break;
            if (n <= 0) return close_slot(s);
            c.discard_pending();
        }
        c.release_idle_buffer();
        return;
    }
    const size_t cap = limits_.head.max_head_bytes + receive_chunk;
    bool ended = false;     // the client has closed its side
    bool new_line = false;  // a line may have ended: worth checking the head again
    for (;;) {
        if (c.pending().size() >= cap) break;
        const bool was_empty = c.pending().empty();
        ssize_t n = c.receive_available(receive_chunk);
        if (n == -2) break;
        if (n > 0) {
            const std::string_view fresh = c.pending().substr(c.pending().size() - static_cast<size_t>(n));
            const size_t nl = fresh.rfind('\n');
            if (nl == std::string_view::npos) {
                s->line_bytes += fresh.size();
            } else {
                new_line = true;
                s->line_bytes = fresh.size() - nl - 1;
            }
        }
        if (n < 0) return close_slot(s);
        if (n == 0) {
            ended = true;
            break;
        }
        if (was_empty && s->idle) {
            // The next request has started: it gets the header timeout.
            s->idle = false;
            set_deadline(s, Clock::now() + limits_.header_timeout);
        }
    }
    // A head is checked again only when a line may have ended or a size
    // limit may have been passed: a head sent a byte at a time costs one
    // scan per line (at most max_fields + 1), not one per byte.
    if (!ended && !new_line && s->line_bytes <= limits_.head.max_line_bytes &&
        c.pending().size() < limits_.head.max_head_bytes)
        return;
    c.skip_leading_empty_lines();
    HeadVerdict head = check_request_head(c.pending(), limits_.head);
    if (ended) {
        // A client may send its request and close its side at once: the
        // request is still answered, then the connection closes.
        if (head.kind != HeadVerdict::Kind::ok) return close_slot(s);
        c.hung_up();
    }
    switch (head.kind) {
        case HeadVerdict::Kind::incomplete: return;
        case HeadVerdict::Kind::refuse: return refuse(s, head.status, head.detail);
        case HeadVerdict::Kind::ok: return dispatch(s);
    }
}

void FrontDoor::dispatch(Slot *s) {
    clear_deadline(s);
    s->state = Slot::State::serving;
    ++serving_;
    // While a pool thread serves it, the socket is watched only for the
    // client hanging up (once), which ends waits made on its behalf.
    watch(s, EPOLL_CTL_MOD, EPOLLRDHUP | EPOLLONESHOT);
    pool_.post([this, s] { serve(s); });
}

void FrontDoor::serve(Slot *s) {
    Connection &c = *s->conn;
    bool waited = false;
    for (;;) {
        HeadVerdict head = check_request_head(c.pending(), limits_.head);
        if (head.kind == HeadVerdict::Kind::incomplete) {
            // A keep-alive client usually sends its next request at once:
            // waiting a moment for it here saves two hand-offs between
            // threads per request. Once only: a slow or idle client is
            // parked with the loop, which applies the deadlines.
            if (waited || stopping_ || !c.wait_readable(keep_alive_linger)) return hand_back(s, Next::park);
            waited = true;
            const ssize_t n = c.receive_available(receive_chunk);
            if (n == 0 || n == -1) return hand_back(s, Next::close);
            c.skip_leading_empty_lines();
            continue;
        }
        if (head.kind == HeadVerdict::Kind::refuse) {
            c.write_all(refusal_(head.status, head.detail, c.pending()));
            return hand_back(s, Next::linger);
        }
        c.begin_request(head, chunked_wire_limit_);
        const bool last = c.requests_served + 1 >= limits_.max_requests_per_connection || stopping_;
        bool again;
        {
            CurrentConnection current(c);
            again = serve_(c, last);
        }
        ++c.requests_served;
        if (!again || last || c.closing() || c.hangup_token().stop_requested())
            return hand_back(s, c.body_fully_read() ? Next::close : Next::linger);
        if (!c.body_fully_read()) return hand_back(s, Next::linger);  // cannot find the next request
        c.skip_leading_empty_lines();
        waited = false;
        // Pipelined requests already received are answered in order, here.
    }
}

void FrontDoor::hand_back(Slot *s, Next next) {
    {
        std::lock_guard lock(handed_back_mu_);
        handed_back_.emplace_back(s, next);
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void FrontDoor::take_back(Slot *s, Next next) {
    --serving_;
    s->state = Slot::State::reading;
    if (next == Next::close || stopping_) return close_slot(s);
    if (next == Next::linger) {
        watch(s, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
        return start_lingering(s);
    }
    // Park: idle until the next request starts, or part of it is here.
    s->idle = s->conn->pending().empty();
    s->conn->release_idle_buffer();
    const size_t nl = s->conn->pending().rfind('\n');
    s->line_bytes = s->conn->pending().size() - (nl == std::string_view::npos ? 0 : nl + 1);
    set_deadline(s, Clock::now() + (s->idle ? limits_.keep_alive_timeout : limits_.header_timeout));
    watch(s, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP);
}

void FrontDoor::refuse(Slot *s, int status, const std::string &detail) {
    // On the loop thread nothing may wait: the answer is sent only if the
    // socket takes it now (a client that does not read gets none). Then
    // what the client still sends is read for a moment, so that closing
    // does not reset the connection before the client has read the answer.
    s->conn->write_now(refusal_(status, detail, s->conn->pending()));
    start_lingering(s);
}

void FrontDoor::start_lingering(Slot *s) {
    if (s->admitted) {
        s->admitted = false;
        open_.fetch_sub(1, std::memory_order_relaxed);
    }
    if (lingering_ >= limits_.max_connections) return close_slot(s);
    ++lingering_;
    s->state = Slot::State::lingering;
    s->conn->discard_pending();
    s->conn->release_idle_buffer();
    ::shutdown(s->conn->fd(), SHUT_WR);
    set_deadline(s, Clock::now() + limits_.linger);
}

void FrontDoor::set_deadline(Slot *s, Clock::time_point when) {
    clear_deadline(s);
    s->deadline = deadlines_.emplace(when, s);
    s->timed = true;
}

void FrontDoor::clear_deadline(Slot *s) {
    if (!s->timed) return;
    deadlines_.erase(s->deadline);
    s->timed = false;
}

void FrontDoor::watch(Slot *s, int op, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = s;
    ::epoll_ctl(epoll_fd_, op, s->conn->fd(), &ev);
}

void FrontDoor::close_slot(Slot *s) {
    clear_deadline(s);
    if (s->state == Slot::State::lingering) --lingering_;
    if (s->admitted) open_.fetch_sub(1, std::memory_order_relaxed);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s->conn->fd(), nullptr);
    slots_.erase(s);
}

void FrontDoor::expire(Clock::time_point now) {
    if (accept_paused_ && now >= accept_paused_until_ && listen_fd_ >= 0) {
        accept_paused_ = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = &listener_tag;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    }
    // Heads not complete in time, idle keep-alive connections, lingering
    // refused ones: all just closed (a client that has sent nothing is
    // owed no answer).
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) close_slot(deadlines_.begin()->second);
}

}  // namespace taskhost::http
