// The child side of plugins/probe.hpp: `taskhost __probe-plugin FD FILE`
// loads the image at FD, checks its descriptor and runs its init() against
// a scratch in-memory database, saying how far it got on its report pipe,
// and, when all went well, the descriptor it read.
#pragma once

namespace taskhost::app {

// Whether argv asks for probe mode.
bool is_probe_child(int argc, char **argv);
// Runs the probe; the process exit status.
int run_probe_child(int argc, char **argv);

}  // namespace taskhost::app
