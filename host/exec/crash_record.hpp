// What plugin code the host was running when it died. While a thread runs
// plugin code it holds a Running mark (a preformatted line in a fixed slot).
// If the process then dies of a fatal signal, or plugin code calls exit(),
// a handler that uses only async-signal-safe calls writes those lines, and
// which one belongs to the thread that died, to the crash record file and to
// stderr; then the signal is raised again (an exit() becomes exit status 70,
// so a supervisor restarts the host). The next start reads the record, fails
// each job with the cause and charges the crash to the plugin that caused it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exec/executor.hpp"

namespace taskhost::exec {

// Who was running plugin code: a job's task, or a plugin's init (no job).
struct CodeInFlight {
    std::string job_id;
    std::string task;
    std::string plugin, version, file, hash;
    std::string tasks_json = "[]";  // all the plugin's task names, when known
};

struct Crash {
    std::string cause;  // "SIGSEGV (signal 11)", "exit() called by plugin code"
    int signal = 0;     // 0 for an exit()
    // The code on the thread that died, when that thread was running plugin code.
    std::optional<CodeInFlight> culprit;
    std::vector<CodeInFlight> others;  // the rest of the plugin code running then
};

class CrashRecord {
public:
    // Installs the handlers, once per process. `path`: the record file
    // (created 0600); empty: stderr only. `slots`: most threads that run
    // plugin code at once.
    static void install(const std::string &path, size_t slots);
    // From now on an exit is the host's own, not a crash.
    static void exiting_normally();

    // Marks the calling thread as running `target`'s code for job `job_id`
    // (empty: no job, e.g. init) for its lifetime. Also gives the thread an
    // alternate signal stack, so that a stack overflow in plugin code is
    // still recorded.
    class Running {
    public:
        Running(const Target &target, std::string_view job_id);
        ~Running();
        Running(const Running &) = delete;
        Running &operator=(const Running &) = delete;

    private:
        int slot_ = -1;
    };

    // The record a crash left at `path`, removed as it is read.
    static std::optional<Crash> take(const std::string &path);
};

}  // namespace taskhost::exec
