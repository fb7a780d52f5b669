// The schedules table (recurring jobs): Store's schedule writes, on the
// write connection inside the batch's transaction, and its reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/schedule.hpp"
#include "store/ops.hpp"
#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {

bool insert_schedule(Connection &conn, const model::Schedule &schedule);
bool update_schedule(Connection &conn, const model::Schedule &schedule, bool set_next_run);
bool delete_schedule(Connection &conn, const std::string &id);
bool record_schedule_run(Connection &conn, const std::string &id, const model::ScheduleRun &run,
                         std::optional<int64_t> fired, int64_t next_run_at);

// One WriteSchedule op: the call its kind names.
bool write_schedule(Connection &conn, const WriteSchedule &op);

std::optional<model::Schedule> get_schedule(Connection &conn, const std::string &id);
std::vector<model::Schedule> list_schedules(Connection &conn);

}  // namespace taskhost::store::sqlite
