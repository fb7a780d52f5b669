#include "plugins/probe.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

extern char **environ;

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

}  // namespace

std::optional<ProbeFailure> probe_in_child(const ProbeOptions &options, const UniqueFd &image,
                                           const std::string &file) {
    auto internal = [](const std::string &what) {
        return ProbeFailure{"cannot probe the plugin: " + what + ": " + std::strerror(errno), false, true};
    };
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return internal("pipe");
    UniqueFd from_child(pipe_fds[0]), child_out(::fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, 10));
    ::close(pipe_fds[1]);
    // Above the numbers the child receives them at, so that no dup2 below
    // overwrites the source of another.
    UniqueFd image_copy(::fcntl(image.get(), F_DUPFD_CLOEXEC, 10));
    if (!child_out || !image_copy) return internal("fcntl");

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, image_copy.get(), probe_image_fd);
    posix_spawn_file_actions_adddup2(&actions, child_out.get(), probe_report_fd);
    // What the plugin prints goes where the host's own output goes, never
    // into the report.
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);  // the host's threads block its signals
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<std::string> args = {options.binary, probe_mode_argument, std::to_string(probe_image_fd), file};
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, options.binary.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (spawned != 0) {
        errno = spawned;
        return internal("cannot start " + options.binary);
    }
    child_out.reset();

    // Read its report until a verdict, its end, or the time is up. Lines
    // before the verdict tell how far it got.
    const auto deadline = std::chrono::steady_clock::now() + options.limit;
    std::string pending;
    std::string phase;  // the last of "started", "loaded", "init"
    std::optional<std::string> verdict;
    bool timed_out = false;
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
        char buffer[4096];
        const ssize_t n = ::read(from_child.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(buffer, static_cast<size_t>(n));
        for (size_t end = pending.find('\n'); end != std::string::npos && !verdict; end = pending.find('\n')) {
            std::string line = pending.substr(0, end);
            pending.erase(0, end + 1);
            if (line == "started" || line == "loaded" || line == "init") phase = line;
            else if (line == "ok" || line.starts_with("refused ")) verdict = std::move(line);
        }
        if (pending.size() > 65536) pending.clear();  // no line is that long
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
    if (phase.empty() && !verdict && (timed_out || !WIFSIGNALED(status)))
        return ProbeFailure{"the trial process did not start (within " + limit + " s)", false, true};
    if (verdict && verdict->starts_with("refused ")) return ProbeFailure{verdict->substr(8), false};
    if (verdict) return std::nullopt;  // "ok": what happens after it (its exit) is not the plugin's doing
    if (timed_out) return ProbeFailure{phase_of(phase) + " did not return within " + limit + " s", true};
    if (WIFSIGNALED(status))
        return ProbeFailure{phase_of(phase) + " crashed: " + describe_signal(WTERMSIG(status)), true};
    return ProbeFailure{phase_of(phase) + " ended the process (exit status " +
                            std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")",
                        true};
}

}  // namespace taskhost::plugins
