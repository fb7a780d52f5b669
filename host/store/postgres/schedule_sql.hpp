// The schedules table (recurring jobs) on PostgreSQL: Store's schedule
// writes, inside the writer's transaction, and its reads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/schedule.hpp"
#include "store/ops.hpp"
#include "store/postgres/connection.hpp"

namespace taskhost::store::postgres {

// One WriteSchedule op: the call its kind names (Store::insert_schedule…).
bool write_schedule(Connection &conn, const WriteSchedule &op);

std::optional<model::Schedule> get_schedule(Connection &conn, const std::string &id);
std::vector<model::Schedule> list_schedules(Connection &conn);

}  // namespace taskhost::store::postgres
