// The store's read connections: a pool lent out one connection per call,
// growing when all are busy. In memory mode, reads and the writer's batches
// also take turns at an RwGate.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <pthread.h>

#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {

// Memory mode only. memdb has no WAL: a reader is locked out for the whole
// of a write transaction, and SQLite's busy handler polls with sleeps that
// grow to 100 ms (a reader measured 0.6 s waits under load, and could hit
// busy_timeout). So the store's own connections take turns here instead:
// readers share, the writer batch is exclusive, and waiting is a proper
// block. Writer-preferring, so a stream of readers cannot starve the writer;
// the single writer lets readers in between batches.
class RwGate {
public:
    RwGate() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&lock_, &attr);
        pthread_rwlockattr_destroy(&attr);
    }
    ~RwGate() { pthread_rwlock_destroy(&lock_); }
    RwGate(const RwGate &) = delete;
    RwGate &operator=(const RwGate &) = delete;
    void lock_shared() { pthread_rwlock_rdlock(&lock_); }
    void lock() { pthread_rwlock_wrlock(&lock_); }
    void unlock() { pthread_rwlock_unlock(&lock_); }

private:
    pthread_rwlock_t lock_;
};

class ReadPool {
public:
    // `size` connections opened now. `name` and `memory` as for Connection.
    ReadPool(const std::string &name, bool memory, size_t size);

    // A read connection for one call. Statements borrowed from it must be
    // destroyed first, which declaration order in the callers ensures.
    class Lease {
    public:
        explicit Lease(ReadPool &pool);
        ~Lease();
        Lease(const Lease &) = delete;
        Lease &operator=(const Lease &) = delete;
        Connection &operator*() { return *conn_; }

    private:
        ReadPool &pool_;
        std::unique_ptr<Connection> conn_;
    };

    // What the writer holds for each batch in memory mode; null for a file
    // (WAL lets reads run beside the writer).
    RwGate *gate() { return memory_ ? &gate_ : nullptr; }

private:
    std::unique_ptr<Connection> checkout();
    void checkin(std::unique_ptr<Connection> conn);

    const std::string name_;
    const bool memory_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Connection>> idle_;  // not lent out
    RwGate gate_;
};

}  // namespace taskhost::store::sqlite
