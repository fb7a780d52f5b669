// The plugin_faults table: what each plugin version (by content hash) has
// done to the host, and whether it is quarantined.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/plugin_faults.hpp"
#include "store/sqlite/connection.hpp"

namespace taskhost::store::sqlite {

// Counts one fault (in a savepoint) and quarantines the version once a count
// reaches its threshold; returns its row as it is now.
model::PluginFaults record_plugin_fault(Connection &conn, const model::PluginFaults &plugin,
                                        model::PluginFaultKind kind, const std::string &reason,
                                        const model::QuarantineThresholds &thresholds, int64_t now);
std::vector<model::PluginFaults> quarantined_plugins(Connection &conn);

}  // namespace taskhost::store::sqlite
