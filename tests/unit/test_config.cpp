// Flags to Config: where --db sends the host.
#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

#include "app/config.hpp"

using taskhost::app::Config;

namespace {

Config read(std::vector<std::string> args) {
    args.insert(args.begin(), "taskhost");
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    auto read = taskhost::app::read_config(static_cast<int>(argv.size()), argv.data());
    REQUIRE(std::holds_alternative<Config>(read));
    return std::get<Config>(read);
}

}  // namespace

TEST_CASE("config: --db names a SQLite file, a sqlite:// URL, :memory: or PostgreSQL, whatever the port") {
    for (const char *port : {"0", "8000"}) {
        CAPTURE(port);
        CHECK(read({"--port", port, "--db", "/data/jobs.db"}).store.path == "/data/jobs.db");
        CHECK(read({"--port", port, "--db", "sqlite:///data/jobs.db"}).store.path == "/data/jobs.db");
        CHECK(read({"--port", port, "--db", "sqlite://rel.db"}).store.path == "rel.db");
        CHECK(read({"--port", port, "--db", ":memory:"}).store.path == ":memory:");
        const Config pg = read({"--port", port, "--db", "postgresql://u@h:5432/db"});
        CHECK(pg.postgres());
        CHECK(pg.postgres_store.url == "postgresql://u@h:5432/db");
        CHECK(read({"--port", port, "--no-migrate"}).postgres_store.migrate == false);
        CHECK(read({"--port", port}).store.migrate == true);
    }
    CHECK(read({}).store.path == "taskhost.db");
    CHECK_FALSE(read({}).postgres());
    // A host keeping its port keeps its id; --host-id wins.
    CHECK(read({"--port", "8000"}).postgres_store.host_id.ends_with(":8000"));
    CHECK(read({"--port", "0"}).postgres_store.host_id.empty());
    CHECK(read({"--port", "8000", "--host-id", "a"}).postgres_store.host_id == "a");
}

TEST_CASE("config: --sync full by default, normal by flag or TASKHOST_SYNC, anything else refused") {
    ::unsetenv("TASKHOST_SYNC");
    CHECK(read({}).store.sync_full);
    CHECK(read({}).postgres_store.sync_full);
    CHECK_FALSE(read({"--sync", "normal"}).store.sync_full);
    CHECK_FALSE(read({"--sync", "normal"}).postgres_store.sync_full);
    CHECK(read({"--sync", "full"}).store.sync_full);
    ::setenv("TASKHOST_SYNC", "normal", 1);
    CHECK_FALSE(read({}).store.sync_full);
    CHECK(read({"--sync", "full"}).store.sync_full);  // the flag wins
    ::unsetenv("TASKHOST_SYNC");
    std::string flag = "--sync", value = "off", name = "taskhost";
    std::vector<char *> argv{name.data(), flag.data(), value.data()};
    const auto refused = taskhost::app::read_config(static_cast<int>(argv.size()), argv.data());
    CHECK(std::holds_alternative<int>(refused));
}
