// The writes the store queues for its writer thread: one payload struct per
// kind, each with exactly its own fields. Blocking ones borrow their inputs
// from the waiting caller (no copies) and write their results through
// pointers to the caller's locals; fire-and-forget ones own theirs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "model/artifact.hpp"
#include "model/job.hpp"
#include "model/plugin_faults.hpp"
#include "model/schedule.hpp"
#include "store/store.hpp"

namespace taskhost::store {

// ---- blocking ----
struct InsertJob {
    const model::Job *job;
    bool for_any_host = false;  // a fleet: held by no host (Store::offer_job)
    // A job with an idempotency key (insert_keyed_job): the key's earlier
    // jobs submitted before this time give it up; false in *inserted if a
    // later one holds it.
    int64_t keys_reusable_before = 0;
    bool *inserted = nullptr;
};
struct StartJob {
    const std::string *id;
    int64_t started_at;
    bool *started;
};
struct FailJobs {
    const std::vector<std::pair<std::string, std::string>> *errors;  // job id, error
    int64_t now;
};
struct RecordPluginFault {
    const model::PluginFaults *plugin;
    model::PluginFaultKind kind;
    const std::string *reason;
    const model::QuarantineThresholds *thresholds;
    int64_t now;
    model::PluginFaults *after;
};
struct DeleteJob {
    const std::string *id;
    bool *deleted;
};
struct PruneJobs {
    int64_t finished_before;
    std::optional<model::JobStatus> status;
    size_t limit;
    int64_t keep_keyed_since;
    Store::Pruned *pruned;
};
struct Recover {
    const std::string *running_error;
    int64_t now;
    std::vector<model::Job> *pending;
};
struct SaveArtifact {
    const model::ArtifactInput *input;  // data_json is set
    model::Artifact *saved;
};
struct UpdateArtifact {
    const std::string *id;
    const model::ArtifactInput *input;
    std::optional<model::Artifact> *updated;
};
struct DeleteArtifact {
    const std::string *id;
    bool *deleted;
};
// Store::insert_schedule, update_schedule (set_next_run), delete_schedule (id),
// record_schedule_run (id, run, fired, next_run_at).
struct WriteSchedule {
    enum class Kind { insert, update, remove, record_run } kind;
    const model::Schedule *schedule = nullptr;
    const std::string *id = nullptr;
    const model::ScheduleRun *run = nullptr;
    std::optional<int64_t> fired;
    int64_t next_run_at = 0;
    bool *done = nullptr;
    bool set_next_run = true;  // update: also next_run_at
};
struct Flush {  // committing its batch is the point
    // At shutdown: job ends kept for a database that is away (PostgreSQL's
    // Committer) are given up on if this batch fails too.
    bool final = false;
};

// ---- fire-and-forget ----
struct UpdateProgress {
    std::string id;
    double fraction;
    std::string message;
};
struct FinishJob {
    // Behind a pointer: a JobEnd is large, and every queued op is the size
    // of the largest kind.
    struct Data {
        Store::JobEnd end;
        std::function<void()> on_durable;
        std::function<void(const std::string &)> on_failed;
    };
    std::string id;
    std::unique_ptr<Data> data;
};
struct JobDue {
    std::string id;
};
struct Probe {};  // a real write (page 1), to see whether commits work again

using Op =
    std::variant<InsertJob, StartJob, UpdateProgress, JobDue, FinishJob, DeleteJob, PruneJobs, SaveArtifact,
                 UpdateArtifact, DeleteArtifact, Recover, FailJobs, RecordPluginFault, WriteSchedule, Flush, Probe>;

// For std::visit with one lambda per kind.
template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};
// Spelled out for clang 14 (the sanitizer builds), which does not deduce
// an aggregate's template arguments by itself.
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace taskhost::store
