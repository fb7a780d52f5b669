// Commits each batch of queued writes in one transaction on the write
// connection. An op that can fail on its own runs in a savepoint, so only
// its caller sees the error; when the transaction or the connection is
// lost, every op of the batch fails, and the next batch reconnects first.
// Also tracks whether commits work, for the health check.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "store/postgres/connection.hpp"
#include "store/postgres/job_sql.hpp"
#include "store/commit_health.hpp"
#include "store/report.hpp"
#include "store/write_queue.hpp"

namespace taskhost::store::postgres {

class Committer final : public BatchApplier {
public:
    Committer(Connection &writer, HostLease lease, const Reporter &report);

    void apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) override;

    // Whether commits work, for the health check.
    CommitHealth &health() { return health_; }
    const CommitHealth &health() const { return health_; }

    uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    void apply_op(Op &op, std::vector<std::function<void()>> &on_durable);
    void op_failed(Write &write, std::exception_ptr error);

    Connection &writer_;
    const HostLease lease_;
    const Reporter &report_;

    // The jobs the batch changed, told to other hosts at its commit.
    std::vector<std::string> changed_;

    std::atomic<uint64_t> commits_{0}, writes_{0};

    CommitHealth health_;
};

}  // namespace taskhost::store::postgres
