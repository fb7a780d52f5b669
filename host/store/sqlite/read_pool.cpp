#include "store/sqlite/read_pool.hpp"

#include <utility>

namespace taskhost::store::sqlite {

ReadPool::ReadPool(const std::string &name, bool memory, size_t size) : name_(name), memory_(memory) {
    for (size_t i = 0; i < size; ++i)
        idle_.push_back(std::make_unique<Connection>(name_, memory_, Connection::Role::reader));
}

ReadPool::Lease::Lease(ReadPool &pool) : pool_(pool), conn_(pool.checkout()) {
    if (pool_.memory_) pool_.gate_.lock_shared();
}

ReadPool::Lease::~Lease() {
    if (pool_.memory_) pool_.gate_.unlock();
    pool_.checkin(std::move(conn_));
}

std::unique_ptr<Connection> ReadPool::checkout() {
    {
        std::lock_guard lock(mu_);
        if (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            return conn;
        }
    }
    // All busy: grow. Opened outside the lock so other readers go on.
    return std::make_unique<Connection>(name_, memory_, Connection::Role::reader);
}

void ReadPool::checkin(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(conn));
}

}  // namespace taskhost::store::sqlite
