// The worker side of exec/worker_pool.hpp: `taskhost __worker FILE
// HOST_PID MEMORY_BYTES CPU_SECONDS USER DATABASE_URL` maps the plugin image
// it was given, runs its init(), then runs the jobs the host sends it one
// at a time, with a host table whose every service is a frame to the host
// (exec/worker_protocol.hpp). It exits when the host closes the channel,
// and dies with the host.
#pragma once

namespace taskhost::app {

// Whether argv asks for worker mode.
bool is_worker_child(int argc, char **argv);
// Runs the worker; never returns normally (the process exit status).
int run_worker_child(int argc, char **argv);

}  // namespace taskhost::app
