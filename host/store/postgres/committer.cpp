#include "store/postgres/committer.hpp"

#include <algorithm>
#include <utility>

#include "store/postgres/artifact_sql.hpp"
#include "store/postgres/job_sql.hpp"
#include "store/postgres/plugin_fault_sql.hpp"
#include "store/postgres/schedule_sql.hpp"
#include "store/postgres/schema.hpp"

namespace taskhost::store::postgres {

// Per transaction, in BEGIN's round trip: the session's setting (which
// Connection raises under full) does not follow a batch through a
// transaction-mode pooler. Under full only `off` is raised, so a stronger
// server setting (remote_apply) stays.
Committer::Committer(Connection &writer, HostLease lease, const Reporter &report, bool sync_full)
    : writer_(writer),
      begin_(sync_full ? "BEGIN; SELECT set_config('synchronous_commit', 'on', true) "
                         "WHERE current_setting('synchronous_commit') = 'off'"
                       : "BEGIN; SET LOCAL synchronous_commit TO off"),
      lease_(std::move(lease)),
      report_(report) {}

namespace {
// A key of its own (the migration lock is ...685): "taskhost" in base 36, plus one.
constexpr char kKeyedInsertsLock[] = "SELECT pg_advisory_xact_lock(2296056052686)";
}  // namespace

void Committer::apply(std::span<Write> batch, std::vector<std::function<void()>> &on_durable) {
    Connection &w = writer_;
    std::exception_ptr batch_error;
    changed_.clear();
    ended_.clear();
    offered_ = false;
    // libpq learns that the server dropped the connection (a restart, a
    // failover) only when it is used: a BEGIN that fails on a connection
    // found broken is tried once more on a new one, nothing being applied.
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            if (w.broken() && !w.reset())
                throw StoreError(StoreError::Kind::unavailable,
                                 "PostgreSQL is unreachable: " + std::string(PQerrorMessage(w.handle())));
            w.exec(begin_);
            batch_error = nullptr;
            break;
        } catch (...) {
            batch_error = std::current_exception();
            if (!w.broken()) break;
        }
    }
    // Two hosts' batches with keyed inserts would wait on each other's
    // uncommitted keys, and in opposite orders deadlock (aborting a whole
    // batch): such batches take one fleet-wide lock first, before any row.
    if (!batch_error && std::any_of(batch.begin(), batch.end(), [](const Write &write) {
            const auto *insert = std::get_if<InsertJob>(&write.op);
            return insert && insert->inserted;
        })) {
        try {
            w.run(kKeyedInsertsLock);
        } catch (...) {
            batch_error = std::current_exception();
        }
    }
    // Ends kept from batches that failed go first, in this transaction:
    // their on_durable callbacks join the batch's once it commits.
    bool parked_failed = false;
    if (!batch_error) {
        for (Write &write : parked_) {
            try {
                apply_op(write.op);
            } catch (...) {
                batch_error = std::current_exception();  // any failed statement aborts the transaction
                parked_failed = true;
                break;
            }
        }
    }
    if (!batch_error) {
        for (Write &write : batch) {
            try {
                apply_op(write.op);
            } catch (...) {
                // An op that failed outside a savepoint (or a lost
                // connection) aborted the transaction: nothing stands.
                if (w.broken() || PQtransactionStatus(w.handle()) != PQTRANS_INTRANS) {
                    batch_error = std::current_exception();
                    break;
                }
                op_failed(write, std::current_exception());
            }
        }
    }
    if (!batch_error) {
        try {
            notify_changed(w, changed_, offered_);
            w.commit();
        } catch (...) {
            batch_error = std::current_exception();
        }
    }
    health_.batch_done(batch);
    if (batch_error) {
        if (!w.broken() && w.in_transaction()) PQclear(PQexec(w.handle(), "ROLLBACK"));
        health_.set_failure(message_of(batch_error));
        batch_failed(batch, batch_error, parked_failed);
        return;
    }
    // Durable now: the ends' callbacks run (taken only now, so that an end
    // kept after a failed batch still has its own).
    for (FinishJob::Data *end : ended_)
        if (end->on_durable) on_durable.push_back(std::move(end->on_durable));
    parked_.clear();
    parked_count_.store(0, std::memory_order_relaxed);
    // Every commit reaches the server (unlike SQLite's, which may write
    // nothing), so any commit shows that commits work again.
    if (health_.failing()) health_.set_failure({});
    commits_.fetch_add(1, std::memory_order_relaxed);
    writes_.fetch_add(batch.size(), std::memory_order_relaxed);
}

void Committer::apply_op(Op &op) {
    Connection &w = writer_;
    std::visit(Overloaded{
                   [&](InsertJob &o) {
                       if (o.inserted)
                           *o.inserted =
                               insert_keyed_job_row(w, *o.job, o.keys_reusable_before, lease_, o.for_any_host);
                       else insert_job_row(w, *o.job, lease_, o.for_any_host);
                       offered_ = offered_ || (o.for_any_host && (!o.inserted || *o.inserted));
                   },
                   [&](StartJob &o) {
                       *o.started = start_job(w, *o.id, o.started_at, lease_);
                       if (*o.started) changed_.push_back(*o.id);
                   },
                   [&](UpdateProgress &o) {
                       update_progress(w, o.id, o.fraction, o.message);
                       changed_.push_back(o.id);
                   },
                   [&](JobDue &o) {
                       job_due(w, o.id);
                       changed_.push_back(o.id);
                   },
                   [&](FinishJob &o) {
                       // A job stored with its end was never seen by anyone.
                       const bool seen = !o.data->end.insert_first;
                       finish_job(w, o.id, o.data->end, report_, lease_);
                       if (seen) changed_.push_back(o.id);
                       ended_.push_back(o.data.get());
                   },
                   [&](DeleteJob &o) {
                       *o.deleted = delete_job(w, *o.id);
                       if (*o.deleted) changed_.push_back(*o.id);
                   },
                   [&](PruneJobs &o) {
                       *o.pruned = prune_jobs(w, o.finished_before, o.status, o.limit, o.keep_keyed_since);
                       // Those waiting on them (a fleet's) learn they are gone.
                       changed_.insert(changed_.end(), o.pruned->jobs.begin(), o.pruned->jobs.end());
                   },
                   [&](Recover &o) { *o.pending = recover(w, *o.running_error, o.now, lease_); },
                   [&](FailJobs &o) {
                       fail_jobs(w, *o.errors, o.now);
                       for (const auto &failed : *o.errors) changed_.push_back(failed.first);
                   },
                   [&](RecordPluginFault &o) {
                       *o.after = record_plugin_fault(w, *o.plugin, o.kind, *o.reason, *o.thresholds, o.now);
                   },
                   [&](SaveArtifact &o) { *o.saved = save_artifact(w, *o.input); },
                   [&](UpdateArtifact &o) { *o.updated = update_artifact(w, *o.id, *o.input); },
                   [&](DeleteArtifact &o) { *o.deleted = delete_artifact(w, *o.id); },
                   [&](WriteSchedule &o) { *o.done = write_schedule(w, o); },
                   [](Flush &) {},
                   [&](Probe &) { w.run(kProbeWrite); },
               },
               op);
}

void Committer::op_failed(Write &write, std::exception_ptr error) { fail_write(write, error, report_); }

void Committer::batch_failed(std::span<Write> batch, std::exception_ptr error, bool parked_failed) {
    const bool unreachable = writer_.broken();
    const bool final = std::any_of(batch.begin(), batch.end(), [](const Write &w) {
        const auto *flush = std::get_if<Flush>(&w.op);
        return flush && flush->final;
    });
    const bool keep = unreachable && !final;
    if (final || (parked_failed && !unreachable)) {
        // Shutting down, or a kept end itself is at fault (it would fail
        // every batch after): whoever waits on them learns now.
        for (Write &write : parked_) op_failed(write, error);
        parked_.clear();
    }
    // Only the ends of jobs already stored: one never stored was never
    // acknowledged, and its submitter is to hear of the failure now.
    auto acknowledged_end = [](const Write &w) {
        const auto *end = std::get_if<FinishJob>(&w.op);
        return end && !end->data->end.insert_first;
    };
    size_t kept = 0;
    for (Write &write : batch) {
        if (keep && acknowledged_end(write) && parked_.size() < kMaxParked) {
            parked_.push_back(std::move(write));
            ++kept;
            continue;
        }
        op_failed(write, error);
    }
    if (kept)
        report_("the database is unreachable: " + std::to_string(kept) + " job end(s) kept (" +
                std::to_string(parked_.size()) + " in all) until it is back");
    parked_count_.store(parked_.size(), std::memory_order_relaxed);
}

}  // namespace taskhost::store::postgres
