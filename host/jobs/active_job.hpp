// A job in flight (or just ended), as the job manager keeps it. Internal to
// jobs/: other layers see JobView copies.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "exec/executor.hpp"
#include "jobs/job_manager.hpp"
#include "jobs/task_stats.hpp"
#include "model/job.hpp"
#include "registry/registry.hpp"

namespace taskhost::jobs {

enum class CancelReason : int { none = 0, user = 1, timeout = 2, deleted = 3, shutdown = 4 };

// How far a job's end has got: none → committing (handed to the store) →
// committed (durable and visible), or lost (the commit failed; the job
// stays as last stored).
enum class EndState { none, committing, committed, lost };

struct ActiveJob final : exec::Work, std::enable_shared_from_this<ActiveJob> {
    explicit ActiveJob(JobManager &owner) : owner(owner) {}
    void run() override { owner.run(shared_from_this()); }

    JobView view() const {  // caller holds mu
        return JobView{record, cancel.load() != 0, version, artifact_json};
    }

    JobManager &owner;
    std::mutex mu;  // guards the fields below that say so
    // Two, so that a waiter for the end is not woken by every progress
    // report, and a change nobody waits for costs no system call.
    std::condition_variable changed;  // notified on every state change
    std::condition_variable ended;    // notified when the end is committed or lost, or on delete
    model::Job record;                // (mu)
    uint64_t version = 0;             // bumps on every change (mu)
    EndState end = EndState::none;    // (mu)
    std::string lost_reason;          // why the end could not be committed (mu)
    bool deleted = false;             // DELETE removed it (mu)
    // end committed or lost, or deleted: readable without mu (set under it).
    // A waiter first yields on it for about one commit (util/yield_wait.hpp).
    std::atomic<bool> settled{false};
    // Its row is in the store or queued for it (mu). A job submitted for
    // one-request execution is stored only when it ends or when its wait
    // runs out, whichever comes first.
    bool stored = false;
    std::string artifact_json;      // the committed result artifact, rendered (mu)
    int64_t progress_saved_us = 0;  // when progress was last written to the store (mu)
    registry::TaskLease task;       // held until its code has returned, or it will never run
    TaskStats *stats = nullptr;     // its task's, looked up once (they outlive jobs)
    // Requeued at start or when due: its queue wait is not a submit's, and
    // the task generation that runs it may not be the one that checked its
    // params.
    bool recovered = false;
    // Its params are checked in the call that runs it (exec::ParamsCheck);
    // whether that call has checked them, and if they were refused, why: the
    // job is then undone, never stored (mu).
    bool check_params_first = false;
    bool params_checked = false;
    std::optional<std::string> params_refused;
    std::atomic<int> cancel{0};     // CancelReason
    // A cancel was asked while it ran, whatever `cancel` says (its timeout
    // may have come first): it is not retried.
    std::atomic<bool> cancel_asked{false};
    // The start times of starts whose commit failed (a fleet's database
    // away, defer_start): if the server committed one after all, the row
    // shows its time, and the start is this host's (mu). Bounded.
    std::vector<int64_t> unconfirmed_starts;
    // Given up on: its end is recorded, though its code may still run.
    std::atomic<bool> abandoned{false};
    // Another host of a fleet runs it (it started there first): no longer
    // this host's, and whoever waits on it here goes on waiting on its row.
    std::atomic<bool> handed_off{false};
    std::atomic<bool> counted_out{false};  // no longer counted in running_
    bool counted_scheduled = false;        // counted in scheduled_ (mu)
};

}  // namespace taskhost::jobs
