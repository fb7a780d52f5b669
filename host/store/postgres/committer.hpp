// Commits each batch of queued writes in one transaction on the write
// connection. An op that can fail on its own runs in a savepoint, so only
// its caller sees the error; when the transaction or the connection is
// lost, every op of the batch fails, and the next batch reconnects first.
// Except job ends: when the server cannot be reached, those are kept
// (parked, up to kMaxParked) and written first by the next batch that gets
// through, so a job that ran while the database was away is not lost.
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
    // `sync_full`: each batch commits with synchronous_commit raised to on
    // where it is off (it returns once the server flushed its WAL), else
    // with it off (PostgresStore::Options).
    Committer(Connection &writer, HostLease lease, const Reporter &report, bool sync_full);

    void apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) override;

    // Whether commits work, for the health check.
    CommitHealth &health() { return health_; }
    const CommitHealth &health() const { return health_; }

    // Job ends waiting for the server to come back.
    size_t parked() const { return parked_count_.load(std::memory_order_relaxed); }
    static constexpr size_t kMaxParked = 10'000;

    uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    void apply_op(Op &op);
    void op_failed(Write &write, std::exception_ptr error);
    // The batch failed: with the server unreachable, its job ends are kept
    // for the next batch (as room allows). The ends kept before fail with
    // it at a final flush, or when one of them made it fail.
    void batch_failed(std::span<Write> batch, std::exception_ptr error, bool parked_failed);

    Connection &writer_;
    const char *const begin_;  // BEGIN with this batch's synchronous_commit
    const HostLease lease_;
    const Reporter &report_;

    // The jobs the batch changed, told to other hosts at its commit.
    std::vector<std::string> changed_;
    bool offered_ = false;                  // the batch stores a job for any host (InsertJob::for_any_host)
    std::vector<FinishJob::Data *> ended_;  // the batch's job ends (with those kept), for their callbacks
    std::vector<Write> parked_;             // job ends kept for the server's return
    std::atomic<size_t> parked_count_{0};

    std::atomic<uint64_t> commits_{0}, writes_{0};

    CommitHealth health_;
};

}  // namespace taskhost::store::postgres
