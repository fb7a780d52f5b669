// The faults a plugin version (its file's content hash) has caused, and
// whether they put it in quarantine: it is then not loaded again until its
// file changes, and its tasks answer 503 naming it.
#pragma once

#include <cstdint>
#include <string>

namespace taskhost::model {

enum class PluginFaultKind {
    crash,         // the host died of a fatal signal, or exit(), in its task
    load_failure,  // its probe crashed, hung or could not run it
    hang,          // a task of it did not stop within its hard limit
};

// How many faults of each kind quarantine a plugin version.
struct QuarantineThresholds {
    int crashes = 2;
    int load_failures = 1;
    int hangs = 2;
};

struct PluginFaults {
    std::string hash;  // SHA-256 of the file's bytes, hex
    std::string file, name, version;
    std::string tasks_json = "[]";  // its task names, when known
    int64_t crashes = 0, load_failures = 0, hangs = 0;
    std::string last_reason;
    int64_t last_at = 0;         // µs since the epoch
    int64_t quarantined_at = 0;  // 0: not quarantined
};

}  // namespace taskhost::model
