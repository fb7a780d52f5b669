// The artifacts table and its rules: level = parent's level + 1 (0 without a
// parent), no parent cycles, levels cascading to descendants. The writes run
// on the write connection inside the batch's transaction, each atomic on its
// own (one statement, or a savepoint); StoreError(invalid) for a rule broken.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model/artifact.hpp"
#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {

// ---- writes ----
// Create, or upsert when input.id names an existing artifact (created_at
// kept). input.data_json must be set.
model::Artifact save_artifact(Connection &conn, const model::ArtifactInput &input);
// Applies the fields that are set; nullopt if absent.
std::optional<model::Artifact> update_artifact(Connection &conn, const std::string &id,
                                               const model::ArtifactInput &input);
// Children keep their level and lose their parent_id. False if absent.
bool delete_artifact(Connection &conn, const std::string &id);
// A job's result artifact; gives it an id and a creation time if it has
// none, and returns the id.
std::string insert_result_artifact(Connection &conn, model::Artifact &artifact);
// One new row as given, updated_at = created_at: no rule checked, for rows
// already known to follow them.
void insert_artifact_row(Connection &conn, const model::Artifact &artifact);

// ---- reads ----
std::optional<model::Artifact> get_artifact(Connection &conn, const std::string &id);
std::vector<model::Artifact> list_artifacts(Connection &conn, size_t limit, size_t offset);
size_t count_artifacts(Connection &conn);
std::vector<model::Artifact> artifact_subtree(Connection &conn, const std::string &root_id);

}  // namespace taskhost::store::sqlite
