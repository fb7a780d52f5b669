// Read connections, lent one at a time. Idle ones are kept up to a count;
// a connection found broken is dropped rather than returned, so the next
// lease connects afresh once the server is back.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/postgres/connection.hpp"

namespace taskhost::store::postgres {

class ReadPool {
public:
    // `durable_commits`: Connection's (reads also write: a cancel, a claim).
    ReadPool(std::string url, size_t keep, bool durable_commits)
        : url_(std::move(url)), keep_(keep), durable_commits_(durable_commits) {}

    class Lease {
    public:
        explicit Lease(ReadPool &pool) : pool_(pool), conn_(pool.take()) {}
        ~Lease() { pool_.give_back(std::move(conn_)); }
        Lease(const Lease &) = delete;
        Lease &operator=(const Lease &) = delete;
        Connection &operator*() { return *conn_; }

    private:
        ReadPool &pool_;
        std::unique_ptr<Connection> conn_;
    };

    // Closes the idle connections: after one was found dropped by the
    // server (a restart), the others most likely were too.
    void drop_idle();

private:
    std::unique_ptr<Connection> take();
    void give_back(std::unique_ptr<Connection> conn);

    const std::string url_;
    const size_t keep_;
    const bool durable_commits_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
};

}  // namespace taskhost::store::postgres
