// taskhost-bench: filling a database with completed jobs for the scale
// scenario, through the host's own store (same schema, same migrations).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct SeedResult {
    std::vector<std::string> job_ids;  // in insertion order
    double seconds = 0;
    std::string method;  // how the rows were written
    std::string note;    // e.g. why the fast path was not used
    std::string error;   // empty on success
};

// Adds `count` completed `hello` jobs, each with its result artifact, to the
// SQLite file at `db_path`. The schema is created by opening the host's
// store on the file (its own migrations); the rows are then written with
// the store's own row inserts, one transaction per 10,000 jobs, or, if that
// fails (or `use_store`), through the store's API from `threads` threads. A
// few jobs are read back through the store either way. `progress` is called now and then with the number of jobs
// written.
SeedResult seed_completed_jobs(const std::string &db_path, size_t count, size_t threads, bool use_store = false,
                               const std::function<void(size_t)> &progress = {});

}  // namespace bench
