// The jobs table on PostgreSQL: the store's job writes and reads. The
// writes run on the write connection inside the batch's transaction; those
// that can fail on their own run in a savepoint, since any error aborts a
// PostgreSQL transaction as a whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/job.hpp"
#include "store/postgres/connection.hpp"
#include "store/report.hpp"
#include "store/store.hpp"

namespace taskhost::store::postgres {

// Runs fn in a savepoint: if it throws, what it did is undone and the
// transaction goes on; the error is rethrown.
template <class Fn>
void in_savepoint(Connection &conn, Fn &&fn) {
    conn.exec("SAVEPOINT op");
    try {
        fn();
    } catch (...) {
        if (!conn.broken()) PQclear(PQexec(conn.handle(), "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op"));
        throw;
    }
    conn.exec("RELEASE SAVEPOINT op");
}

// Who runs the jobs this store starts, and for how long a start holds
// without a heartbeat.
struct HostLease {
    std::string host_id;
    int64_t lease_us;
};

// ---- writes ----
// Queued by this host (or, `for_any_host`, by none: any host that has its
// task may claim it); one running or ended after it ran (a job stored
// late) is also run by it, and a running one holds a lease.
void insert_job_row(Connection &conn, const model::Job &job, const HostLease &lease, bool for_any_host = false);
// A job with an idempotency key: false (nothing stored) if a job submitted
// from `reusable_before` on holds the key; an older one gives it up.
bool insert_keyed_job_row(Connection &conn, const model::Job &job, int64_t reusable_before, const HostLease &lease,
                          bool for_any_host);
bool start_job(Connection &conn, const std::string &id, int64_t started_at, const HostLease &lease);
void update_progress(Connection &conn, const std::string &id, double fraction, const std::string &message);
// A `scheduled` job whose time has come becomes `pending`.
void job_due(Connection &conn, const std::string &id);
// Stores the end of a job with its result artifact. If that artifact cannot
// be stored, the job ends `failed` saying why (also told to `report`).
void finish_job(Connection &conn, const std::string &id, Store::JobEnd &end, const Reporter &report,
                const HostLease &lease);
bool delete_job(Connection &conn, const std::string &id);
// Store::prune_jobs, within the writer's transaction.
Store::Pruned prune_jobs(Connection &conn, int64_t finished_before, std::optional<model::JobStatus> status,
                         size_t limit, int64_t keep_keyed_since);
// Fails the running jobs of this host's last run and those whose lease ran
// out; returns the pending ones it queued before, oldest first.
std::vector<model::Job> recover(Connection &conn, const std::string &running_error, int64_t now,
                                const HostLease &lease);
void fail_jobs(Connection &conn, const std::vector<std::pair<std::string, std::string>> &errors, int64_t now);

// ---- a fleet (each one statement: autocommit on a read connection) ----
// The channel hosts tell each other on. Payloads: "j:ID,ID…" (those jobs
// changed), "c:ID" (cancel that job).
inline constexpr char kChannel[] = "taskhost";
// Claims for this host up to `limit` pending jobs of these tasks that no
// live host holds, oldest first.
std::vector<model::Job> claim_pending(Connection &conn, const std::vector<Store::Runnable> &runnable,
                                      size_t limit, const HostLease &lease);
std::vector<model::Job> held_pending(Connection &conn, const HostLease &lease);
// Pending jobs this host holds become no host's; the fleet is told.
void release_pending(Connection &conn, const std::vector<std::string> &ids);
// A pending job becomes canceled; the host holding it is told. False if
// it was not pending.
bool cancel_pending(Connection &conn, const std::string &id, int64_t now);
// Marks a running job's row (cancel_requested_at) and tells its host.
void ask_cancel(Connection &conn, const std::string &id, int64_t now);
// Inside a batch's transaction: tells listeners, at its commit, that these
// jobs changed (sorts and dedupes `ids`), and with `work` that unheld jobs
// wait to be claimed.
void notify_changed(Connection &conn, std::vector<std::string> &ids, bool work = false);

// ---- reads ----
std::optional<model::Job> get_job(Connection &conn, const std::string &id);
std::optional<model::Job> find_keyed_job(Connection &conn, const std::string &key, int64_t submitted_from);
std::vector<model::Job> list_jobs(Connection &conn, std::optional<model::JobStatus> status, size_t limit,
                                  size_t offset);
size_t count_jobs(Connection &conn, std::optional<model::JobStatus> status);
int64_t finished_at_of_newest(Connection &conn, size_t n);

}  // namespace taskhost::store::postgres
