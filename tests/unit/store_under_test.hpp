// The store the generic store tests run against: SQLite (a memory
// database) by default, PostgreSQL when TASKHOST_TEST_STORE=postgres (the
// ctest entry unit-store-postgres), each test on a schema of its own in the
// cluster at TASKHOST_TEST_PG_URL (scripts/test starts one).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace taskhost::testing {

struct StoreUnderTestOptions {
    size_t max_batch = 1024;
    size_t read_connections = 8;
    std::function<void(const std::string &)> on_write_error;
};

// Owns the store and, on PostgreSQL, the schema it was given.
class StoreUnderTest {
public:
    explicit StoreUnderTest(StoreUnderTestOptions options = {});
    ~StoreUnderTest();
    StoreUnderTest(const StoreUnderTest &) = delete;
    StoreUnderTest &operator=(const StoreUnderTest &) = delete;

    store::Store &operator*() { return *store_; }
    store::Store *operator->() { return store_.get(); }
    // libpq URL of this test's schema (PostgreSQL only).
    const std::string &url() const { return url_; }

private:
    std::string schema_, url_;
    std::unique_ptr<store::Store> store_;
};

bool testing_postgres();

// The cluster's URL with search_path set to `schema`. Exits with 77 (ctest:
// skipped) when TASKHOST_TEST_PG_URL is not set.
std::string postgres_url_for(const std::string &schema);
// A fresh schema (and its URL), dropped by drop_postgres_schema.
std::string create_postgres_schema();
void drop_postgres_schema(const std::string &schema);

}  // namespace taskhost::testing
