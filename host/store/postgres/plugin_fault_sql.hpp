// The plugin_faults table on PostgreSQL: counts of each plugin version's
// faults, and its quarantine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/plugin_faults.hpp"
#include "store/postgres/connection.hpp"

namespace taskhost::store::postgres {

model::PluginFaults record_plugin_fault(Connection &conn, const model::PluginFaults &plugin,
                                        model::PluginFaultKind kind, const std::string &reason,
                                        const model::QuarantineThresholds &thresholds, int64_t now);
std::vector<model::PluginFaults> quarantined_plugins(Connection &conn);

}  // namespace taskhost::store::postgres
