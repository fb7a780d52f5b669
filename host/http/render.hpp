// JSON text of the records the API returns. Written directly (no DOM) since
// these are on the per-request path.
#pragma once

#include <string>

#include "store/store.hpp"

namespace taskhost::http {

struct JobExtras {
    bool cancel_requested = false;
};

// JobRecord: id, task_name, status, submitted_at, started_at, finished_at,
// error, error_traceback, artifact_id, result (= artifact_id), progress,
// progress_message, timeout_s, cancel_requested.
void render_job(std::string &out, const store::Job &job, JobExtras extras = {});
std::string render_job(const store::Job &job, JobExtras extras = {});

// ArtifactOut: id, created_at, updated_at, tags, data, parent_id, level.
void render_artifact(std::string &out, const store::Artifact &artifact);
std::string render_artifact(const store::Artifact &artifact);

// How artifact levels are labelled in $tree / $expand.
struct Hierarchy {
    std::string name = "task_results";
    std::vector<std::string> level_labels = {"task_run", "output"};
    std::string label(int level) const;
};

}  // namespace taskhost::http
