// Test harness: runs the real taskhost binary as a child process.
//
// HostProcess starts `taskhost --port 0 --host 127.0.0.1 --plugins DIR --db DB
// --log-level warn [extra...]` with posix_spawn, reads the single
// "taskhost listening on http://127.0.0.1:<port>" line from its stdout (with a
// deadline) and keeps its stderr in a file, so a failing test can show it.
// The destructor sends SIGTERM, waits with a deadline, then SIGKILLs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

namespace th_test {

namespace fs = std::filesystem;

// A fresh folder (mkdtemp) removed with everything inside on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const fs::path &path() const { return path_; }
    fs::path operator/(const std::string &name) const { return path_ / name; }

private:
    fs::path path_;
};

// Paths of the built plugins.
fs::path example_plugin(const std::string &file);  // TASKHOST_PLUGIN_DIR/file
fs::path fixture_plugin(const std::string &file);  // TASKHOST_TEST_PLUGIN_DIR/file
// Deploys `src` as dir/name the way the README tells plugin authors to:
// write a temporary file, then rename it over the old one (atomic).
void deploy(const fs::path &dir, const fs::path &src, const std::string &name);
// demo.so, math.so, storage.so, data.so
std::vector<fs::path> example_plugins();
// Creates `dir` and symlinks each file into it (by file name).
void assemble_plugins(const fs::path &dir, const std::vector<fs::path> &files);

struct HostOptions {
    fs::path plugins_dir;
    std::string db = ":memory:";
    std::vector<std::string> extra;  // more flags
    std::vector<std::string> kept;   // more flags that restart(extra) keeps
    fs::path work_dir;               // stderr logs go here
    std::chrono::milliseconds ready_timeout{20000};
};

class HostProcess {
public:
    explicit HostProcess(HostOptions options);  // starts it; throws if it does not come up
    ~HostProcess();
    HostProcess(const HostProcess &) = delete;
    HostProcess &operator=(const HostProcess &) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    bool is_alive();
    void send_signal(int sig);

    // SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status
    // (or -1 if the process was already reaped). Idempotent.
    int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));
    // SIGKILL and reap.
    void kill9();
    // Waits until the process exits by itself; false on timeout.
    bool wait_exit(std::chrono::milliseconds timeout, int *status = nullptr);
    // Stops it (if running) and starts it again on the same database; extra
    // flags may be replaced.
    void restart();
    void restart(std::vector<std::string> extra);

    // Everything the host wrote to stderr so far (all runs).
    std::string stderr_text() const;
    const HostOptions &options() const { return options_; }

    // A keep-alive client for this host (generous timeouts).
    std::unique_ptr<httplib::Client> make_client() const;

private:
    void start();
    void reap(int status);

    HostOptions options_;
    pid_t pid_ = -1;
    int port_ = 0;
    int stdout_fd_ = -1;
    int run_ = 0;
    std::vector<fs::path> stderr_files_;
};

}  // namespace th_test
