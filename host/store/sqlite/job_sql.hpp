// The jobs table: the store's job writes and reads. The writes run on the
// write connection inside the batch's transaction, each atomic on its own
// (one statement, or a savepoint).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/job.hpp"
#include "store/sqlite/connection.hpp"
#include "store/report.hpp"
#include "store/store.hpp"

namespace taskhost::store::sqlite {

// ---- writes ----
// One new row holding every field of `job`.
void insert_job_row(Connection &conn, const model::Job &job);
// A job with an idempotency key: false (nothing stored) if a job submitted
// from `reusable_before` on holds the key; an older one gives it up.
bool insert_keyed_job_row(Connection &conn, const model::Job &job, int64_t reusable_before);
// Moves a `pending` (or due `scheduled`) job to `running` and counts the
// attempt; false (and nothing changed) if it is neither.
bool start_job(Connection &conn, std::string_view id, int64_t started_at);
// A `scheduled` job whose time has come becomes `pending`.
void job_due(Connection &conn, std::string_view id);
void update_progress(Connection &conn, std::string_view id, double fraction, std::string_view message);
// Stores the end of a job with its result artifact. If that artifact cannot
// be stored, the job ends `failed` saying why (also told to `report`).
void finish_job(Connection &conn, const std::string &id, Store::JobEnd &end, const Reporter &report);
// False if no such job.
bool delete_job(Connection &conn, const std::string &id);
// Store::prune_jobs, within the writer's transaction.
Store::Pruned prune_jobs(Connection &conn, int64_t finished_before, std::optional<model::JobStatus> status,
                         size_t limit, int64_t keep_keyed_since);
// Every `running` job becomes `failed` with `running_error`; returns the
// `pending` and `scheduled` ones, oldest first.
std::vector<model::Job> recover(Connection &conn, const std::string &running_error, int64_t now);
// Each job (id, error) not ended yet becomes `failed` with its error.
void fail_jobs(Connection &conn, const std::vector<std::pair<std::string, std::string>> &errors, int64_t now);

// ---- reads ----
std::optional<model::Job> get_job(Connection &conn, const std::string &id);
std::optional<model::Job> find_keyed_job(Connection &conn, const std::string &key, int64_t submitted_from);
// Newest first.
std::vector<model::Job> list_jobs(Connection &conn, std::optional<model::JobStatus> status, size_t limit,
                                  size_t offset);
size_t count_jobs(Connection &conn, std::optional<model::JobStatus> status);
int64_t finished_at_of_newest(Connection &conn, size_t n);

}  // namespace taskhost::store::sqlite
