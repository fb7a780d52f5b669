// A recurring job: a task run with the same params whenever a cron
// expression fires (model/cron.hpp), as an ordinary job linked to it.
#pragma once

#include <cstdint>
#include <string>

namespace taskhost::model {

// Times are microseconds since the Unix epoch, UTC; 0 means "none".
struct Schedule {
    std::string id;  // a ULID
    std::string task_name;
    std::string params_json = "{}";
    std::string cron;               // as CronSchedule::parse accepts it
    std::string time_zone = "UTC";  // an IANA name
    bool enabled = true;
    // Declared by its task's plugin (the SDK's .every()): the plugin owns
    // its task, cron and time zone; people may pause it and set its params.
    bool from_plugin = false;
    int64_t created_at = 0, updated_at = 0;
    // The run it fires next; 0 while it is disabled.
    int64_t next_run_at = 0;
    // Its last run: when it fired, the job it made (empty if it could not
    // make one), and why not (empty when it did).
    int64_t last_run_at = 0;
    std::string last_job_id;
    std::string last_error;
    int64_t runs = 0;  // jobs it has made (each counted once)
};

// What a fire (or a $trigger) did, for Store::record_schedule_run.
struct ScheduleRun {
    int64_t at = 0;
    std::string job_id;  // empty: no job was made
    std::string error;   // why not
    // The job is new (runs counts it); false when the run's job was made
    // before (another host, or this one before a restart, made it).
    bool made = false;
};

}  // namespace taskhost::model
