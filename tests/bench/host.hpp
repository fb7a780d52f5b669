// taskhost-bench: starting and stopping taskhost processes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct HostOptions {
    std::string binary;
    std::string plugins_dir;
    std::string db;
    std::string log_path;            // the host's stderr goes here
    std::vector<std::string> extra;  // more flags
    double start_timeout_s = 120;
};

struct MemoryFigures {
    long vm_rss_kb = -1;
    long rss_anon_kb = -1;
    long rss_file_kb = -1;
    long vm_hwm_kb = -1;
    int threads = -1;
};

class HostProcess {
public:
    HostProcess() = default;
    ~HostProcess() { stop(); }
    HostProcess(const HostProcess &) = delete;
    HostProcess &operator=(const HostProcess &) = delete;

    // Spawns the host and waits for its "taskhost listening on" line.
    bool start(const HostOptions &options, std::string *error);
    // SIGTERM, then SIGKILL after `grace_s`. Idempotent.
    void stop(double grace_s = 20);
    bool running() const { return pid_ > 0; }

    pid_t pid() const { return pid_; }
    uint16_t port() const { return port_; }
    // Spawn → listening line, milliseconds.
    double startup_ms() const { return startup_ms_; }
    MemoryFigures memory() const;
    // CPU time the host has used so far (user + system), seconds; -1 if unknown.
    double cpu_seconds() const;
    // Open file descriptors whose target is exactly `path` (e.g. SQLite
    // connections to the database file); -1 if unknown.
    int open_fds_to(const std::string &path) const;
    // Memory mappings of `path` (SQLite's mmap windows) and the resident
    // kB they account for, from /proc/<pid>/smaps.
    struct Mappings {
        int count = -1;
        long rss_kb = -1;
    };
    Mappings mappings_of(const std::string &path) const;
    // The tail of the host's log (for error messages).
    std::string log_tail(size_t max_bytes = 2000) const;

private:
    pid_t pid_ = -1;
    uint16_t port_ = 0;
    double startup_ms_ = 0;
    std::string log_path_;
};

// CPU time of any process from /proc/<pid>/stat, seconds: its own (utime +
// stime) and that of its children it has reaped (cutime + cstime). Both -1
// if the process is gone.
struct ProcessCpu {
    double own_s = -1;
    double reaped_children_s = -1;
};
ProcessCpu process_cpu(pid_t pid);

// Every host still running is sent SIGTERM (used from signal handlers and
// at exit; async-signal-safe).
void terminate_all_hosts() noexcept;
// Host pids are also appended to this file (so a wrapper script can clean up
// if this process is killed outright). Empty: none.
void set_pid_file(const std::string &path);

}  // namespace bench
