#include "model/job.hpp"

namespace taskhost::model {

std::string_view to_string(JobStatus status) {
    switch (status) {
        case JobStatus::pending: return "pending";
        case JobStatus::running: return "running";
        case JobStatus::completed: return "completed";
        case JobStatus::failed: return "failed";
        case JobStatus::canceled: return "canceled";
        case JobStatus::scheduled: return "scheduled";
    }
    return "pending";
}

std::optional<JobStatus> parse_job_status(std::string_view text) {
    for (auto s : {JobStatus::pending, JobStatus::running, JobStatus::completed, JobStatus::failed, JobStatus::canceled,
                   JobStatus::scheduled})
        if (to_string(s) == text) return s;
    return std::nullopt;
}

}  // namespace taskhost::model
