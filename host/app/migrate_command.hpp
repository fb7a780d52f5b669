// `taskhost migrate [--db DB]`: brings a database's schema to this build's
// version and says from which. For hosts started with --no-migrate, so an
// operator decides when a schema changes (before a rolling deploy).
#pragma once

namespace taskhost::app {

bool is_migrate_command(int argc, char **argv);
int run_migrate_command(int argc, char **argv);

}  // namespace taskhost::app
