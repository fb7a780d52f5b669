// Opens a new plugin version first in a short-lived child process: its
// static initializers, entry point and init() run there, so one that
// crashes or hangs costs a child, not the host. The child is this same
// binary started in probe mode (app/probe_child.hpp), so nothing of the
// host's threads or locks is inherited, and it reports on a pipe at fd
// probe_report_fd (its stdout goes to the host's stderr):
//   "started"         about to load it
//   "loaded"          the image is mapped, static initializers done
//   "init"            the descriptor is sound; init() starts
//   "ok"              init() returned success
//   "refused REASON"  an ordinary refusal, as the host would give it (one line)
// The first "ok" or "refused" line is its verdict.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "util/unique_fd.hpp"

namespace taskhost::plugins {

struct ProbeFailure {
    std::string reason;
    bool wedged = false;     // crashed or hung: a fault of the version, not just a refusal
    bool transient = false;  // not the plugin's doing (the trial could not run): try again later
};

struct ProbeOptions {
    std::string binary;  // this program
    std::chrono::milliseconds limit{10000};
};

// Runs the probe child on the sealed `image` of `file`; nothing if it passed.
std::optional<ProbeFailure> probe_in_child(const ProbeOptions &options, const UniqueFd &image, const std::string &file);

// The fd numbers at which the child finds the image and its report pipe,
// and its first argument.
inline constexpr int probe_image_fd = 3;
inline constexpr int probe_report_fd = 4;
inline constexpr const char *probe_mode_argument = "__probe-plugin";

}  // namespace taskhost::plugins
