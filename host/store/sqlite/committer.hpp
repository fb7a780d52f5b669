// Commits each batch of queued writes in one BEGIN IMMEDIATE … COMMIT on the
// write connection, dispatching each op to the job / artifact SQL. An op
// that fails alone (constraint, missing parent) is undone by itself (it is
// one statement, or runs in a savepoint) and only its caller sees the error;
// when SQLite rolls the whole transaction back, every op of the batch fails.
// Also tracks whether commits work, for the health check.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/read_pool.hpp"
#include "store/commit_health.hpp"
#include "store/report.hpp"
#include "store/write_queue.hpp"

namespace taskhost::store::sqlite {

class Committer final : public BatchApplier {
public:
    // `gate`: memory mode, held for each batch. `wal`: file mode, whose count
    // of commits that appended WAL frames tells whether a commit wrote.
    // `health`: shared with the checkpointer, whose fsyncs latch it too.
    Committer(Connection &writer, RwGate *gate, const Checkpointer *wal, CommitHealth &health, const Reporter &report);

    void apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) override;

    uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    void run_batch(std::span<Write> batch, std::vector<std::function<void()>> &on_durable);
    void apply_op(Op &op, std::vector<std::function<void()>> &on_durable);
    void op_failed(Write &write, std::exception_ptr error);

    Connection &writer_;
    RwGate *const gate_;
    const Checkpointer *const wal_;
    const Reporter &report_;

    std::atomic<uint64_t> commits_{0}, writes_{0};

    CommitHealth &health_;
};

}  // namespace taskhost::store::sqlite
