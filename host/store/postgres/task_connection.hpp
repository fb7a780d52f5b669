// The Database and Session services' connection on PostgreSQL.
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace taskhost::store::postgres {

std::unique_ptr<TaskConnection> make_task_connection(const std::string &url, bool durable_commits);

}  // namespace taskhost::store::postgres
