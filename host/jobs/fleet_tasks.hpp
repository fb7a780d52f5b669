// The tasks a fleet's live hosts have loaded, as each host describes them
// in the store's hosts table (Store::HostRecord::tasks_json): what lets
// any host accept a job for a task only some hosts have, check its params
// against the task's schema, and list the fleet's tasks. Read from the
// store at most once per max_age a caller allows, and kept.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model/retry.hpp"

namespace taskhost::schema {
class JsonSchema;
}  // namespace taskhost::schema

namespace taskhost::store {
class Store;
}  // namespace taskhost::store

namespace taskhost::jobs {

class FleetTasks {
public:
    struct Task {
        // As the hosts with the highest major version of its plugin
        // describe it (a rolling deploy runs new jobs on the new version).
        std::string info_json;  // TaskInfo
        std::string plugin_version;
        std::vector<std::string> tags;
        double default_timeout_s = 0;
        int default_priority = 0;
        model::RetryPolicy retry;
        bool retry_safe = false;
        std::shared_ptr<const schema::JsonSchema> params_schema;  // null: none declared, or not usable
        std::vector<std::string> hosts;  // ids of the live hosts that have it loaded, any version

        bool has_tags(const std::vector<std::string> &wanted) const;
    };
    struct Catalogue {
        std::map<std::string, Task, std::less<>> tasks;
        std::chrono::steady_clock::time_point read_at;
    };

    explicit FleetTasks(const store::Store &store) : store_(store) {}

    // The catalogue, read again if older than `max_age`. One caller reads
    // at a time, the others meanwhile take the one there is; after a read
    // failed, none is tried for a second (the database is away: callers do
    // not queue up behind its connect timeout). Throws what the store
    // throws when none could be read yet.
    std::shared_ptr<const Catalogue> get(std::chrono::milliseconds max_age) const;
    // The task, from a catalogue at most a second old; one read again if it
    // is not there and that one is older than a tenth of a second (a host
    // that has just loaded it). Null if no live host has it.
    std::shared_ptr<const Catalogue> find(std::string_view name, const Task *&task) const;

private:
    std::shared_ptr<const Catalogue> read(const Catalogue *previous) const;

    const store::Store &store_;
    mutable std::mutex read_mu_;  // held by the one caller reading
    mutable std::mutex mu_;       // guards current_, failed_at_
    mutable std::shared_ptr<const Catalogue> current_;
    mutable std::chrono::steady_clock::time_point failed_at_;  // the last read that failed
    mutable std::string failure_;                              // and why
};

}  // namespace taskhost::jobs
