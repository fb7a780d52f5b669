// The write queue: callers hand ops to one writer thread, which takes
// everything queued (up to max_batch) as a batch, has it applied as one
// transaction, then wakes the callers of that batch and runs the on_durable
// callbacks. It knows nothing of SQL: a BatchApplier does the applying.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "store/ops.hpp"
#include "store/report.hpp"

namespace taskhost::store {

// Lives on a blocked caller's stack; written by the writer thread, read by
// the caller once `done` is seen under the queue mutex.
struct Waiter {
    bool done = false;
    uint64_t batch = 0;  // the batch expected to carry the op (picks the condvar)
    std::exception_ptr error;
};

// A queued op and the caller blocked on it (none for fire-and-forget ops).
struct Write {
    Op op;
    Waiter *waiter = nullptr;
};

// Applies a batch on the writer thread: commits it as one transaction, sets
// the error of each blocking op that failed in its waiter, and adds the
// on_durable callbacks of what it committed to `on_durable`.
class BatchApplier {
public:
    virtual void apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) = 0;

protected:
    ~BatchApplier() = default;
};

// The text of an exception, for reports.
std::string message_of(std::exception_ptr error);

// A write that failed, alone or with its batch: a blocking op's caller gets
// the error; one nobody waits for is reported, and a job end's on_failed
// runs (once, though a batch that fails after the op failed on its own
// calls this again). It runs inside the batch, mid-transaction: on_failed
// must not read from the store.
void fail_write(Write &write, std::exception_ptr error, const Reporter &report);

class WriteQueue {
public:
    // Starts the writer thread.
    WriteQueue(BatchApplier &applier, const Reporter &report, size_t max_batch);
    // Applies everything queued, then stops the writer thread.
    ~WriteQueue();
    WriteQueue(const WriteQueue &) = delete;
    WriteQueue &operator=(const WriteQueue &) = delete;

    // Queues an op nobody waits for.
    void post(Op &&op);
    // Queues a blocking op and waits for its batch to commit; rethrows the
    // op's own error.
    void call(Op &&op);
    // Returns once every op queued before it is committed and its on_durable
    // callback has returned.
    void flush() { call(Flush{}); }
    // Ops queued and not yet taken by the writer.
    size_t pending() const;

private:
    void run();  // the writer thread
    void wake_writer_locked();
    bool notify_waiters(bool flush_waiters);
    void run_callbacks();

    BatchApplier &applier_;
    const Reporter &report_;
    const size_t max_batch_;

    mutable std::mutex mu_;
    std::condition_variable writer_cv_;  // wakes the writer
    // Wakes blocked callers. Two, by batch parity: callers queued while batch
    // N commits wait for N+1 on the other one, so finishing N wakes only
    // N's callers, with one broadcast (the writer's critical path stays one
    // syscall, not one per caller).
    std::condition_variable done_cv_[2];
    uint64_t batches_taken_ = 0;    // guarded by mu_
    std::vector<Write> queue_;      // guarded by mu_
    bool writer_sleeping_ = false;  // guarded by mu_
    bool stopping_ = false;         // guarded by mu_

    // Writer-thread state.
    std::vector<Write> batch_;
    std::vector<std::function<void()>> callbacks_;

    std::thread writer_;  // last: starts once the rest is ready
};

}  // namespace taskhost::store
