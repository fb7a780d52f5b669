// The JSON text of the records the API returns. Written directly (no DOM):
// this is on the per-request path.
#pragma once

#include <string>

#include "model/artifact.hpp"
#include "model/job.hpp"
#include "model/schedule.hpp"

namespace taskhost::model {

// JobRecord: id, task_name, status, submitted_at, started_at, finished_at,
// error, error_traceback, artifact_id, result (= artifact_id), progress,
// progress_message, timeout_s, cancel_requested.
void render_job(std::string &out, const Job &job, bool cancel_requested);
std::string render_job(const Job &job, bool cancel_requested);

// ArtifactOut: id, created_at, updated_at, tags, data, parent_id, level.
void render_artifact(std::string &out, const Artifact &artifact);
std::string render_artifact(const Artifact &artifact);

// ScheduleOut: id, task_name, params, cron, tz, enabled, source ("api" or
// "plugin"), created_at, updated_at, next_run_at, last_run_at, last_job_id,
// last_error, runs.
void render_schedule(std::string &out, const Schedule &schedule);
std::string render_schedule(const Schedule &schedule);

}  // namespace taskhost::model
