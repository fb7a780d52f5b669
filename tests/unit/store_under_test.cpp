#include "store_under_test.hpp"

#include <cstdio>
#include <cstdlib>

#include <algorithm>

#include "store/postgres/connection.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/ulid.hpp"

namespace taskhost::testing {

namespace {

std::string cluster_url() {
    const char *url = std::getenv("TASKHOST_TEST_PG_URL");
    if (!url || !*url) {
        std::fprintf(stderr, "TASKHOST_TEST_PG_URL is not set (tests/pg/cluster start DIR prints one): skipped\n");
        std::exit(77);
    }
    return url;
}

}  // namespace

bool testing_postgres() {
    const char *kind = std::getenv("TASKHOST_TEST_STORE");
    return kind && std::string(kind) == "postgres";
}

std::string postgres_url_for(const std::string &schema) {
    std::string url = cluster_url();
    url += url.find('?') == std::string::npos ? '?' : '&';
    return url + "options=-csearch_path%3D" + schema;
}

std::string create_postgres_schema() {
    std::string schema = "t_" + new_ulid_string();
    std::transform(schema.begin(), schema.end(), schema.begin(), [](unsigned char c) { return std::tolower(c); });
    store::postgres::Connection conn(cluster_url(), false);
    conn.exec(("CREATE SCHEMA " + schema).c_str());
    return schema;
}

void drop_postgres_schema(const std::string &schema) {
    try {
        store::postgres::Connection conn(cluster_url(), false);
        conn.exec(("DROP SCHEMA " + schema + " CASCADE").c_str());
    } catch (const std::exception &e) {
        std::fprintf(stderr, "could not drop test schema %s: %s\n", schema.c_str(), e.what());
    }
}

StoreUnderTest::StoreUnderTest(StoreUnderTestOptions options) {
    if (testing_postgres()) {
        schema_ = create_postgres_schema();
        url_ = postgres_url_for(schema_);
        store::PostgresStore::Options o;
        o.url = url_;
        o.max_batch = options.max_batch;
        o.read_connections = options.read_connections;
        o.on_write_error = std::move(options.on_write_error);
        store_ = std::make_unique<store::PostgresStore>(std::move(o));
    } else {
        store::SqliteStore::Options o;
        o.path = ":memory:";
        o.max_batch = options.max_batch;
        o.read_connections = options.read_connections;
        o.on_write_error = std::move(options.on_write_error);
        store_ = std::make_unique<store::SqliteStore>(std::move(o));
    }
}

StoreUnderTest::~StoreUnderTest() {
    store_.reset();  // drains and closes its connections before the schema goes
    if (!schema_.empty()) drop_postgres_schema(schema_);
}

}  // namespace taskhost::testing
