// Starting a helper child of the host (a probe, a worker process): the
// taskhost binary itself, by posix_spawn, never fork of the multithreaded
// host.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace taskhost {

// One descriptor handed to the child: `from` in the host becomes `to` there.
struct ChildFd {
    int from;
    int to;
};

// Starts `binary` with `args` (argv[0] included). The child receives exactly
// `fds` (every descriptor of the host is close-on-exec), its stdout goes to
// the host's stderr, its stdin reads /dev/null, and its signals start
// unblocked at their defaults (the host's threads block theirs). Returns
// its pid, or -1 with errno set.
pid_t spawn_child(const std::string &binary, const std::vector<std::string> &args, const std::vector<ChildFd> &fds);

}  // namespace taskhost
