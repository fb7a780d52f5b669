#include "store/write_queue.hpp"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include <sched.h>

#include "store/store.hpp"
#include "util/thread_name.hpp"

namespace taskhost::store {

std::string message_of(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception &e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

void fail_write(Write &write, std::exception_ptr error, const Reporter &report) {
    if (write.waiter) {
        write.waiter->error = error;
        return;
    }
    const std::string what = message_of(error);
    std::visit(Overloaded{
                   [&](UpdateProgress &op) { report("update_progress(" + op.id + ") failed: " + what); },
                   [&](JobDue &op) { report("job_due(" + op.id + ") failed: " + what); },
                   [&](Probe &) { report("probe() failed: " + what); },
                   [&](FinishJob &op) {
                       report("finish_job(" + op.id + ") failed: " + what);
                       if (!op.data->on_failed) return;
                       auto on_failed = std::exchange(op.data->on_failed, nullptr);
                       try {
                           on_failed(what);
                       } catch (...) {
                           report("on_failed callback threw");
                       }
                   },
                   [](auto &) {},  // the other kinds are blocking: their caller has the error
               },
               write.op);
}

WriteQueue::WriteQueue(BatchApplier &applier, const Reporter &report, size_t max_batch)
    : applier_(applier), report_(report), max_batch_(max_batch ? max_batch : 1) {
    batch_.reserve(max_batch_);
    queue_.reserve(max_batch_);
    writer_ = std::thread([this] { run(); });
}

WriteQueue::~WriteQueue() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        writer_cv_.notify_one();
    }
    writer_.join();
}

void WriteQueue::post(Op &&op) {
    std::unique_lock lock(mu_);
    queue_.push_back(Write{std::move(op)});
    wake_writer_locked();
}

void WriteQueue::call(Op &&op) {
    // From on_durable (the writer thread) this would wait for itself.
    if (std::this_thread::get_id() == writer_.get_id())
        throw StoreError(StoreError::Kind::internal, "blocking store write called from the writer thread");
    Waiter w;
    std::unique_lock lock(mu_);
    w.batch = batches_taken_ + 1;
    queue_.push_back(Write{std::move(op), &w});
    wake_writer_locked();
    done_cv_[w.batch & 1].wait(lock, [&] { return w.done; });
    if (w.error) std::rethrow_exception(w.error);
}

size_t WriteQueue::pending() const {
    std::lock_guard lock(mu_);
    return queue_.size();
}

void WriteQueue::wake_writer_locked() {
    // Only a sleeping writer needs the (syscall-costing) notify; a busy
    // one picks the op up when it comes back for the next batch.
    if (writer_sleeping_) {
        writer_sleeping_ = false;
        writer_cv_.notify_one();
    }
}

void WriteQueue::run() {
    name_this_thread("th-store");
    for (;;) {
        {
            std::unique_lock lock(mu_);
            while (queue_.empty() && !stopping_) {
                writer_sleeping_ = true;
                writer_cv_.wait(lock);
            }
            writer_sleeping_ = false;
            if (queue_.empty()) return;  // stopping, and everything is drained
            if (queue_.size() < 4) {
                // A small batch: let submitters that are already
                // runnable add their writes to this commit (measured:
                // about 1.5x the writes per commit under load; no cost
                // when nothing else is runnable).
                lock.unlock();
                sched_yield();
                lock.lock();
            }
            ++batches_taken_;
            if (queue_.size() <= max_batch_) {
                batch_.swap(queue_);  // both keep their capacity: no allocation
            } else {
                auto cut = queue_.begin() + static_cast<std::ptrdiff_t>(max_batch_);
                batch_.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(cut));
                queue_.erase(queue_.begin(), cut);
            }
        }

        applier_.apply(batch_, callbacks_);

        // A flush is answered after the callbacks: whoever flushes may rely
        // on their effects, or tear down what they use.
        const bool flushes = notify_waiters(false);
        run_callbacks();
        if (flushes) notify_waiters(true);
        batch_.clear();
    }
}

// Marks the batch's waiters done: those of flushes, or all others.
// Returns whether the batch holds a flush. Normally every waiter here
// expects this batch; ops left over from an oversized queue expected an
// earlier one, so each is notified by its own parity.
bool WriteQueue::notify_waiters(bool flush_waiters) {
    bool wake[2] = {false, false};
    bool has_flush = false;
    {
        std::lock_guard lock(mu_);
        for (Write &w : batch_) {
            if (!w.waiter) continue;
            const bool is_flush = std::holds_alternative<Flush>(w.op);
            has_flush |= is_flush;
            if (is_flush != flush_waiters) continue;
            w.waiter->done = true;
            wake[w.waiter->batch & 1] = true;
        }
    }
    for (int p = 0; p < 2; ++p)
        if (wake[p]) done_cv_[p].notify_all();
    return has_flush;
}

void WriteQueue::run_callbacks() {
    for (auto &cb : callbacks_) {
        try {
            cb();
        } catch (const std::exception &e) {
            report_(std::string("on_durable callback threw: ") + e.what());
        } catch (...) {
            report_("on_durable callback threw");
        }
    }
    callbacks_.clear();
}

}  // namespace taskhost::store
