// Where the faults of plugin versions are kept: the store, which app/
// wires in. The plugin manager charges faults to a version and refuses
// to load a quarantined one.
#pragma once

#include <string>
#include <vector>

#include "model/plugin_faults.hpp"

namespace taskhost::plugins {

class FaultBook {
public:
    virtual ~FaultBook() = default;
    // Counts one fault of `plugin` (by hash); its record after, quarantined
    // once the count of that kind reached its threshold.
    virtual model::PluginFaults record(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                       const std::string &reason) = 0;
    virtual std::vector<model::PluginFaults> quarantined() = 0;
};

}  // namespace taskhost::plugins
