// The plugin author's commands, in the taskhost binary itself so they are
// the host's own rules and never out of step with it:
//   taskhost plugin new NAME [--dir D]   a ready-to-build out-of-tree project
//   taskhost plugin check FILE.so...     load it offline exactly as a host
//                                        would; print TaskInfo or why not
#pragma once

namespace taskhost::app {

// Whether argv asks for `taskhost plugin ...`.
bool is_plugin_command(int argc, char **argv);
// Runs it; the process exit status (0 ok, 1 refused or failed, 2 usage).
int run_plugin_command(int argc, char **argv);

}  // namespace taskhost::app
