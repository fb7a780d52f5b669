#include "store/postgres/read_pool.hpp"

namespace taskhost::store::postgres {

std::unique_ptr<Connection> ReadPool::take() {
    {
        std::lock_guard lock(mu_);
        if (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            return conn;
        }
    }
    return std::make_unique<Connection>(url_,
                                        durable_commits_);  // outside the lock: connecting takes a round trip or more
}

void ReadPool::drop_idle() {
    std::vector<std::unique_ptr<Connection>> dropped;
    {
        std::lock_guard lock(mu_);
        dropped.swap(idle_);
    }
}  // closed here, outside the lock

void ReadPool::give_back(std::unique_ptr<Connection> conn) {
    if (conn->broken() || conn->in_transaction()) return;  // dropped: closes it
    std::lock_guard lock(mu_);
    if (idle_.size() < keep_) idle_.push_back(std::move(conn));
}

}  // namespace taskhost::store::postgres
