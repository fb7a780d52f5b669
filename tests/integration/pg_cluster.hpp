// PostgreSQL for the integration tests: a schema of its own for one test in
// the cluster at TASKHOST_TEST_PG_URL (scripts/test starts one), or a
// private cluster of its own for a test that stops and restarts the server.
// Without TASKHOST_TEST_PG_URL they exit 77 (ctest: skipped).
#pragma once

#include <string>

#include "host_process.hpp"

namespace th_test {

class PgSchema {
public:
    PgSchema();   // CREATE SCHEMA t_<ulid-ish>
    ~PgSchema();  // DROP SCHEMA … CASCADE
    PgSchema(const PgSchema &) = delete;
    PgSchema &operator=(const PgSchema &) = delete;
    // The cluster's URL with search_path set to this schema.
    const std::string &url() const { return url_; }
    // Runs SQL in this schema; returns the first cell of the first row ("" if none).
    std::string query(const std::string &sql) const;

private:
    std::string name_, url_;
};

// A cluster of its own (tests/pg/cluster), for stopping and resuming.
class PgCluster {
public:
    PgCluster();  // starts it
    ~PgCluster();
    const std::string &url() const { return url_; }
    void stop();    // fast shutdown: clients are disconnected
    void resume();  // the same data and port

private:
    TempDir dir_;
    std::string url_;
};

}  // namespace th_test
