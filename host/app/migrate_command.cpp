#include "app/migrate_command.hpp"

#include <cstdio>
#include <cstring>
#include <string>

#include <CLI/CLI.hpp>

#include "app/config.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace taskhost::app {

bool is_migrate_command(int argc, char **argv) { return argc >= 2 && std::strcmp(argv[1], "migrate") == 0; }

int run_migrate_command(int argc, char **argv) {
    CLI::App app{"taskhost migrate: brings the database schema to this build's version"};
    app.name("taskhost migrate");
    std::string db = "taskhost.db";
    app.add_option("--db", db, "A SQLite file (or sqlite:// URL), or a postgresql:// URL")
        ->envname("TASKHOST_DB")
        ->capture_default_str();
    try {
        app.parse(argc - 1, argv + 1);
    } catch (const CLI::ParseError &e) {
        return app.exit(e);
    }
    const bool postgres = store::is_postgres_url(db);
    const int current = postgres ? store::PostgresStore::schema_version() : store::SqliteStore::schema_version();
    try {
        const int found = postgres ? store::PostgresStore::migrate(db) : store::SqliteStore::migrate(sqlite_path(db));
        if (found == current) std::printf("schema version %d: already current\n", current);
        else std::printf("schema version %d: migrated from %d\n", current, found);
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "taskhost migrate: %s\n", e.what());
        return 1;
    }
}

}  // namespace taskhost::app
