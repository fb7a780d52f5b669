// The artifacts table on PostgreSQL (data and tags as jsonb): the store's
// artifact writes and reads, the same rules as the SQLite store's.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model/artifact.hpp"
#include "store/postgres/connection.hpp"

namespace taskhost::store::postgres {

// ---- writes (each in a savepoint of the batch's transaction) ----
model::Artifact save_artifact(Connection &conn, const model::ArtifactInput &input);
std::optional<model::Artifact> update_artifact(Connection &conn, const std::string &id,
                                               const model::ArtifactInput &input);
bool delete_artifact(Connection &conn, const std::string &id);
// A job's result artifact (gets an id if it has none); returns its id.
// Not in a savepoint of its own: the caller's.
std::string insert_result_artifact(Connection &conn, model::Artifact &artifact);

// ---- reads ----
std::optional<model::Artifact> get_artifact(Connection &conn, const std::string &id);
std::vector<model::Artifact> list_artifacts(Connection &conn, size_t limit, size_t offset);
size_t count_artifacts(Connection &conn);
std::vector<model::Artifact> artifact_subtree(Connection &conn, const std::string &root_id);

}  // namespace taskhost::store::postgres
