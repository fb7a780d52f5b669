#include "plugins/probe.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "util/spawn_child.hpp"

namespace taskhost::plugins {

namespace {

std::string describe_signal(int sig) {
    const char *abbrev = ::sigabbrev_np(sig);
    return std::string(abbrev ? std::string("SIG") + abbrev : "signal") + " (signal " + std::to_string(sig) + ")";
}

// What the child was doing when it stopped answering, from its last line.
std::string phase_of(const std::string &last_line) {
    if (last_line == "init") return "init";
    if (last_line == "loaded") return "the entry point";
    return "static initializer";  // "started": it was loading
}

std::string seconds_text(std::chrono::milliseconds limit) {
    const double s = static_cast<double>(limit.count()) / 1000.0;
    std::string text = std::to_string(s);
    text.erase(text.find_last_not_of('0') + 1);
    if (!text.empty() && text.back() == '.') text.pop_back();
    return text;
}

// "4 MiB", or a byte count that is not a whole number of MiB.
std::string size_text(size_t bytes) {
    if (bytes % (size_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
    return std::to_string(bytes) + " bytes";
}

}  // namespace

ProbeResult probe_in_child(const ProbeOptions &options, const UniqueFd &image, const std::string &file) {
    auto internal = [](const std::string &what) {
        return ProbeResult{ProbeFailure{"cannot probe the plugin: " + what + ": " + std::strerror(errno), false, true},
                           {}};
    };
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return internal("pipe");
    UniqueFd from_child(pipe_fds[0]), child_out(pipe_fds[1]);
    const pid_t pid = spawn_child(options.binary,
                                  {options.binary, probe_mode_argument, std::to_string(probe_image_fd), file},
                                  {{image.get(), probe_image_fd}, {child_out.get(), probe_report_fd}});
    if (pid < 0) return internal("cannot start " + options.binary);
    child_out.reset();

    // Read its report until a verdict, its end, or the time is up. Lines
    // before the verdict tell how far it got; one may carry its descriptor.
    const auto deadline = std::chrono::steady_clock::now() + options.limit;
    const size_t longest_line = options.max_descriptor_bytes + probe_descriptor_prefix.size();
    std::string pending;
    size_t scanned = 0;  // how much of `pending` holds no newline
    std::string phase;   // the last of "started", "loaded", "init"
    std::string descriptor;
    std::optional<std::string> verdict;
    bool timed_out = false;
    bool too_long = false;  // a report line beyond longest_line
    bool too_long_descriptor = false;
    std::vector<char> buffer(65536);
    while (!verdict) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{from_child.get(), POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;  // the deadline check above ends it
        const ssize_t n = ::read(from_child.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(buffer.data(), static_cast<size_t>(n));
        size_t line_start = 0;
        for (size_t end = pending.find('\n', scanned); end != std::string::npos && !verdict && !too_long;
             end = pending.find('\n', scanned)) {
            std::string_view line(pending.data() + line_start, end - line_start);
            if (line.size() > longest_line) {
                too_long = true;
                too_long_descriptor = line.starts_with(probe_descriptor_prefix);
            } else if (line == "started" || line == "loaded" || line == "init") phase = line;
            else if (line.starts_with(probe_descriptor_prefix))
                descriptor = line.substr(probe_descriptor_prefix.size());
            else if (line == "ok" || line.starts_with("refused ")) verdict = std::string(line);
            line_start = scanned = end + 1;
        }
        if (too_long) break;
        pending.erase(0, line_start);
        scanned = pending.size();
        if (pending.size() > longest_line) {  // a line not even ended yet
            too_long = true;
            too_long_descriptor = pending.starts_with(probe_descriptor_prefix);
            break;
        }
    }
    if (too_long) {
        // Bounded memory: the child is stopped, not read to its end.
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        const std::string most = size_text(options.max_descriptor_bytes);
        if (too_long_descriptor)
            return {ProbeFailure{"its descriptor is larger than " + most + ", the most the host reads", false}, {}};
        return {ProbeFailure{"the trial process wrote a report line longer than " + most, false}, {}};
    }
    int status = 0;
    bool reaped = false;
    if (!timed_out) {
        // It has given its verdict or closed its report: it is exiting.
        while (!reaped) {
            if (::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
            else if (std::chrono::steady_clock::now() >= deadline) break;
            else ::usleep(1000);
        }
        timed_out = !reaped && !verdict;
    }
    if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }

    const std::string limit = seconds_text(options.limit);
    auto failed = [](std::string reason, bool wedged, bool transient = false) {
        return ProbeResult{ProbeFailure{std::move(reason), wedged, transient}, {}};
    };
    if (phase.empty() && !verdict && (timed_out || !WIFSIGNALED(status)))
        return failed("the trial process did not start (within " + limit + " s)", false, true);
    if (verdict && verdict->starts_with("refused ")) return failed(verdict->substr(8), false);
    // "ok": what happens after it (its exit) is not the plugin's doing
    if (verdict) return ProbeResult{std::nullopt, std::move(descriptor)};
    if (timed_out) return failed(phase_of(phase) + " did not return within " + limit + " s", true);
    if (WIFSIGNALED(status)) return failed(phase_of(phase) + " crashed: " + describe_signal(WTERMSIG(status)), true);
    return failed(phase_of(phase) + " ended the process (exit status " +
                      std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")",
                  true);
}

}  // namespace taskhost::plugins
