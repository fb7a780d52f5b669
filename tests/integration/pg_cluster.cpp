#include "pg_cluster.hpp"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include <doctest/doctest.h>

namespace th_test {

namespace {

std::string cluster_url() {
    const char *url = std::getenv("TASKHOST_TEST_PG_URL");
    if (!url || !*url) {
        std::fprintf(stderr, "TASKHOST_TEST_PG_URL is not set (tests/pg/cluster start DIR prints one): skipped\n");
        std::exit(77);
    }
    return url;
}

// Runs `sql` on a connection of its own; the first cell of the first row.
std::string run_sql(const std::string &url, const std::string &sql) {
    PGconn *conn = PQconnectdb(url.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
        std::string why = PQerrorMessage(conn);
        PQfinish(conn);
        throw std::runtime_error("cannot connect to " + url + ": " + why);
    }
    PQsetNoticeProcessor(conn, [](void *, const char *) {}, nullptr);  // DROP … CASCADE lists what it drops
    PGresult *r = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(r);
    std::string out;
    if (status == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
    std::string error = status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(conn);
    if (!error.empty()) throw std::runtime_error(sql + ": " + error);
    return out;
}

std::string with_search_path(std::string url, const std::string &schema) {
    url += url.find('?') == std::string::npos ? '?' : '&';
    return url + "options=-csearch_path%3D" + schema;
}

std::string cluster_script() { return std::string(TASKHOST_SOURCE_DIR) + "/tests/pg/cluster"; }

std::string run_script(const std::string &args) {
    const std::string cmd = cluster_script() + " " + args;
    FILE *p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    REQUIRE_MESSAGE(::pclose(p) == 0, "failed: " << cmd);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

}  // namespace

PgSchema::PgSchema() {
    std::random_device rd;
    name_ = "it_" + std::to_string(rd()) + std::to_string(rd());
    run_sql(cluster_url(), "CREATE SCHEMA " + name_);
    url_ = with_search_path(cluster_url(), name_);
}

PgSchema::~PgSchema() {
    try {
        run_sql(cluster_url(), "DROP SCHEMA " + name_ + " CASCADE");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "could not drop test schema %s: %s\n", name_.c_str(), e.what());
    }
}

std::string PgSchema::query(const std::string &sql) const { return run_sql(url_, sql); }

PgCluster::PgCluster() {
    cluster_url();  // skipped like the others without a cluster of scripts/test
    url_ = run_script("start " + (dir_.path() / "pg").string());
}

PgCluster::~PgCluster() {
    const fs::path dir = dir_.path() / "pg";
    std::system((cluster_script() + " stop " + dir.string() + " >/dev/null 2>&1").c_str());
    // Where postgres could not use the temp folder, the cluster lives in
    // /tmp/taskhost-pg.* (linked as pg/pg): removed with it.
    std::error_code ec;
    if (fs::is_symlink(dir / "pg", ec)) fs::remove_all(fs::read_symlink(dir / "pg", ec), ec);
}

void PgCluster::stop() { run_script("stop " + (dir_.path() / "pg").string()); }

void PgCluster::resume() { run_script("resume " + (dir_.path() / "pg").string()); }

}  // namespace th_test
