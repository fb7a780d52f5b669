#include "store/sqlite/committer.hpp"

#include <algorithm>
#include <utility>

#include "store/sqlite/artifact_sql.hpp"
#include "store/sqlite/job_sql.hpp"
#include "store/sqlite/plugin_fault_sql.hpp"
#include "store/sqlite/schedule_sql.hpp"
#include "store/sqlite/schema.hpp"

namespace taskhost::store::sqlite {

namespace {

constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";

}  // namespace

Committer::Committer(Connection &writer, RwGate *gate, const Checkpointer *wal, CommitHealth &health,
                     const Reporter &report)
    : writer_(writer), gate_(gate), wal_(wal), report_(report), health_(health) {}

void Committer::apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) {
    if (gate_) gate_->lock();  // memory mode: readers wait for the whole batch (see RwGate)
    run_batch(batch, on_durable);
    if (gate_) gate_->unlock();
    health_.batch_done(batch);
}

void Committer::run_batch(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) {
    Connection &w = writer_;
    const uint64_t wal_commits_before = wal_ ? wal_->wal_commits() : 0;
    // After an fsync failed nothing is written again (CommitHealth::latch).
    if (health_.latched()) {
        const auto refused = std::make_exception_ptr(StoreError(StoreError::Kind::unavailable, health_.failure()));
        on_durable.clear();
        for (Write &write : batch) op_failed(write, refused);
        return;
    }
    std::exception_ptr batch_error;
    int failed_code = 0;  // the extended result code of what failed
    try {
        Stmt(w, kBegin).run();
    } catch (...) {
        batch_error = std::current_exception();
        failed_code = sqlite3_extended_errcode(w.handle());
    }
    if (!batch_error) {
        for (Write &write : batch) {
            try {
                apply_op(write.op, on_durable);
            } catch (...) {
                if (sqlite3_get_autocommit(w.handle())) {
                    // SQLite rolled the whole transaction back (I/O
                    // error, disk full…): nothing of this batch stands.
                    batch_error = std::current_exception();
                    failed_code = sqlite3_extended_errcode(w.handle());
                    break;
                }
                op_failed(write, std::current_exception());
            }
        }
    }
    if (!batch_error) {
        try {
            Stmt(w, kCommit).run();
        } catch (...) {
            batch_error = std::current_exception();
            failed_code = sqlite3_extended_errcode(w.handle());
        }
    }
    if (batch_error) {
        if (!sqlite3_get_autocommit(w.handle())) sqlite3_exec(w.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
        on_durable.clear();  // nothing became durable
        // An fsync that failed is not retried (CommitHealth::latch).
        if (is_fsync_failure(failed_code)) {
            health_.latch_fsync_failure(message_of(batch_error));
            // SQLite wrote this batch's WAL frames before the fsync that
            // failed, and recovery may replay them: its callers cannot be
            // told it was not stored, only that nobody knows yet.
            batch_error = std::make_exception_ptr(StoreError(
                StoreError::Kind::unavailable,
                "fsync failed (" + message_of(batch_error) +
                    "): whether this write was kept is known only after a restart, and writes are refused until "
                    "then"));
        } else {
            health_.set_failure(message_of(batch_error));
        }
        for (Write &write : batch) op_failed(write, batch_error);
        return;
    }
    // Commits work again, if this one wrote something: one that changed
    // no page (a flush, a delete of nothing) proves nothing. Without a
    // WAL (memory), any op but a flush counts.
    if (health_.failing() &&
        (wal_ ? wal_->wal_commits() != wal_commits_before : std::any_of(batch.begin(), batch.end(), [](const Write &w) {
            return !std::holds_alternative<Flush>(w.op);
        })))
        health_.set_failure({});
    commits_.fetch_add(1, std::memory_order_relaxed);
    writes_.fetch_add(batch.size(), std::memory_order_relaxed);
}

void Committer::apply_op(Op &op, std::vector<std::function<void()>> &on_durable) {
    Connection &w = writer_;
    std::visit(Overloaded{
                   [&](InsertJob &o) {
                       if (o.inserted) *o.inserted = insert_keyed_job_row(w, *o.job, o.keys_reusable_before);
                       else insert_job_row(w, *o.job);
                   },
                   [&](StartJob &o) { *o.started = start_job(w, *o.id, o.started_at); },
                   [&](UpdateProgress &o) { update_progress(w, o.id, o.fraction, o.message); },
                   [&](JobDue &o) { job_due(w, o.id); },
                   [&](FinishJob &o) {
                       finish_job(w, o.id, o.data->end, report_);
                       if (o.data->on_durable) on_durable.push_back(std::move(o.data->on_durable));
                   },
                   [&](DeleteJob &o) { *o.deleted = delete_job(w, *o.id); },
                   [&](PruneJobs &o) {
                       *o.pruned = prune_jobs(w, o.finished_before, o.status, o.limit, o.keep_keyed_since);
                   },
                   [&](Recover &o) { *o.pending = recover(w, *o.running_error, o.now); },
                   [&](FailJobs &o) { fail_jobs(w, *o.errors, o.now); },
                   [&](RecordPluginFault &o) {
                       *o.after = record_plugin_fault(w, *o.plugin, o.kind, *o.reason, *o.thresholds, o.now);
                   },
                   [&](SaveArtifact &o) { *o.saved = save_artifact(w, *o.input); },
                   [&](UpdateArtifact &o) { *o.updated = update_artifact(w, *o.id, *o.input); },
                   [&](DeleteArtifact &o) { *o.deleted = delete_artifact(w, *o.id); },
                   [&](WriteSchedule &o) { *o.done = write_schedule(w, o); },
                   [](Flush &) {},
                   [&](Probe &) { rewrite_schema_version(w); },
               },
               op);
}

void Committer::op_failed(Write &write, std::exception_ptr error) { fail_write(write, error, report_); }

}  // namespace taskhost::store::sqlite
