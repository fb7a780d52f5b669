// Opens a new plugin version first in a short-lived child process: its
// static initializers, entry point and init() run there, so one that
// crashes or hangs costs a child, not the host. The child is this same
// binary started in probe mode (app/probe_child.hpp), so nothing of the
// host's threads or locks is inherited, and it reports on a pipe at fd
// probe_report_fd (its stdout goes to the host's stderr):
//   "started"         about to load it
//   "loaded"          the image is mapped, static initializers done
//   "init"            the descriptor is sound; init() starts
//   "descriptor JSON" the descriptor it read (descriptor_to_json), sent
//                     just before "ok": what the host lists and checks
//                     params against without mapping the plugin itself
//   "ok"              init() returned success
//   "refused REASON"  an ordinary refusal, as the host would give it (one line)
// The first "ok" or "refused" line is its verdict. Everything on the pipe
// is untrusted: the plugin's code runs in that process and may write to it.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "plugins/descriptor.hpp"

#include "util/unique_fd.hpp"

namespace taskhost::plugins {

struct ProbeFailure {
    std::string reason;
    bool wedged = false;     // crashed or hung: a fault of the version, not just a refusal
    bool transient = false;  // not the plugin's doing (the trial could not run): try again later
};

// How the trial went: failed, or passed with the descriptor it reported.
struct ProbeResult {
    std::optional<ProbeFailure> failure;  // set: it did not pass
    // When it passed: the last "descriptor" line's JSON, unchecked (read it
    // with descriptor_from_json); empty if the child sent none.
    std::string descriptor_json;

    bool passed() const { return !failure; }
};

struct ProbeOptions {
    std::string binary;  // this program
    std::chrono::milliseconds limit{10000};
    // A longer "descriptor" line refuses the plugin (and ends the child).
    size_t max_descriptor_bytes = max_descriptor_json_bytes;
};

// Runs the probe child on the sealed `image` of `file`.
ProbeResult probe_in_child(const ProbeOptions &options, const UniqueFd &image, const std::string &file);

// The fd numbers at which the child finds the image and its report pipe,
// and its first argument.
inline constexpr int probe_image_fd = 3;
inline constexpr int probe_report_fd = 4;
inline constexpr const char *probe_mode_argument = "__probe-plugin";
// The report line that carries the descriptor: this, then its JSON.
inline constexpr std::string_view probe_descriptor_prefix = "descriptor ";

}  // namespace taskhost::plugins
