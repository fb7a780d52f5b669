// The host: every component wired together, served until a signal says
// stop, then shut down in a stated order.
#pragma once

#include "app/config.hpp"

namespace taskhost::app {

// Returns the process exit status. Call block_signals() first.
int run(Config config);

}  // namespace taskhost::app
