#include "host_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_log.hpp"

extern char **environ;

namespace th_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---- TempDir -------------------------------------------------------------------

TempDir::TempDir() {
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/taskhost-it-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    path_ = buf.data();
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

// ---- plugin folders ------------------------------------------------------------

fs::path example_plugin(const std::string &file) { return fs::path(TASKHOST_PLUGIN_DIR) / file; }
fs::path fixture_plugin(const std::string &file) { return fs::path(TASKHOST_TEST_PLUGIN_DIR) / file; }

void deploy(const fs::path &dir, const fs::path &src, const std::string &name) {
    const fs::path tmp = dir / ("." + name + ".tmp");
    fs::copy_file(src, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, dir / name);
}

std::vector<fs::path> example_plugins() {
    return {example_plugin("demo.so"), example_plugin("math.so"), example_plugin("storage.so"),
            example_plugin("data.so")};
}

void assemble_plugins(const fs::path &dir, const std::vector<fs::path> &files) {
    fs::create_directories(dir);
    for (const auto &f : files) {
        if (!fs::exists(f)) throw std::runtime_error("plugin not built: " + f.string());
        fs::create_symlink(fs::absolute(f), dir / f.filename());
    }
}

// ---- HostProcess ---------------------------------------------------------------

namespace {
// warn by default; TASKHOST_TEST_LOG_LEVEL=debug (etc.) to see more when
// investigating a failure.
std::string log_level() {
    const char *level = std::getenv("TASKHOST_TEST_LOG_LEVEL");
    return level && *level ? level : "warn";
}
}  // namespace

HostProcess::HostProcess(HostOptions options) : options_(std::move(options)) {
    if (options_.work_dir.empty()) throw std::runtime_error("HostProcess needs a work_dir");
    start();
}

HostProcess::~HostProcess() {
    const pid_t pid = pid_;
    try {
        stop(5000ms);
    } catch (...) {
    }
    record_host_log("taskhost pid " + std::to_string(pid) + " stderr", stderr_text());
}

void HostProcess::start() {
    ++run_;
    fs::path err_path = options_.work_dir / ("host-stderr-" + std::to_string(run_) + ".log");
    stderr_files_.push_back(err_path);

    std::vector<std::string> args = {TASKHOST_BINARY,
                                     "--port",
                                     "0",
                                     "--host",
                                     "127.0.0.1",
                                     "--plugins",
                                     options_.plugins_dir.string(),
                                     "--db",
                                     options_.db,
                                     "--log-level",
                                     log_level()};
    args.insert(args.end(), options_.kept.begin(), options_.kept.end());
    args.insert(args.end(), options_.extra.begin(), options_.extra.end());
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        throw std::runtime_error("cannot open " + err_path.string());
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    // The child must not inherit our blocked-signal mask or ignored signals.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out_pipe[1]);
    ::close(err_fd);
    if (rc != 0) {
        ::close(out_pipe[0]);
        throw std::runtime_error(std::string("posix_spawn ") + TASKHOST_BINARY + ": " + std::strerror(rc));
    }
    pid_ = pid;
    stdout_fd_ = out_pipe[0];
    port_ = 0;

    // Read stdout until the listening line, with a deadline.
    const std::string marker = "taskhost listening on http://127.0.0.1:";
    std::string got;
    auto deadline = Clock::now() + options_.ready_timeout;
    std::string failure;
    for (;;) {
        size_t nl = got.find('\n');
        if (nl != std::string::npos) {
            std::string line = got.substr(0, nl);
            if (line.rfind(marker, 0) == 0) {
                port_ = std::atoi(line.c_str() + marker.size());
                if (port_ <= 0) failure = "unparsable listening line: " + line;
            } else {
                failure = "unexpected first stdout line: " + line;
            }
            break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            failure = "no listening line within " + std::to_string(options_.ready_timeout.count()) + " ms";
            break;
        }
        pollfd p{stdout_fd_, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 200)));
        if (n < 0 && errno != EINTR) {
            failure = "poll failed";
            break;
        }
        if (n > 0) {
            char buf[512];
            ssize_t r = ::read(stdout_fd_, buf, sizeof buf);
            if (r > 0) got.append(buf, static_cast<size_t>(r));
            else if (r == 0) {
                failure = "stdout closed before the listening line (host exited?)";
                break;
            }
        }
    }
    if (!failure.empty()) {
        kill9();
        std::string log = stderr_text();
        record_host_log("taskhost failed to start", log);
        throw std::runtime_error("taskhost did not start: " + failure + "\n--- stderr ---\n" + log);
    }
}

void HostProcess::reap(int) {
    pid_ = -1;
    if (stdout_fd_ >= 0) {
        ::close(stdout_fd_);
        stdout_fd_ = -1;
    }
}

bool HostProcess::is_alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == 0) return true;
    if (r == pid_) reap(status);
    else pid_ = -1;
    return false;
}

void HostProcess::send_signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
}

bool HostProcess::wait_exit(std::chrono::milliseconds timeout, int *status_out) {
    if (pid_ <= 0) return true;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno == ECHILD)) {
            if (status_out) *status_out = status;
            reap(status);
            return true;
        }
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
}

int HostProcess::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (wait_exit(grace, &status)) return status;
    record_host_log("harness",
                    "taskhost did not exit within " + std::to_string(grace.count()) + " ms of SIGTERM: killed");
    kill9();
    return -1;
}

void HostProcess::kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reap(status);
}

void HostProcess::restart() {
    stop();
    start();
}

void HostProcess::restart(std::vector<std::string> extra) {
    stop();
    options_.extra = std::move(extra);
    start();
}

std::string HostProcess::stderr_text() const {
    std::string out;
    for (size_t i = 0; i < stderr_files_.size(); ++i) {
        std::ifstream in(stderr_files_[i]);
        std::ostringstream buf;
        buf << in.rdbuf();
        if (stderr_files_.size() > 1) out += "[run " + std::to_string(i + 1) + "]\n";
        out += buf.str();
    }
    return out;
}

std::unique_ptr<httplib::Client> HostProcess::make_client() const {
    auto cli = std::make_unique<httplib::Client>("127.0.0.1", port_);
    cli->set_keep_alive(true);
    cli->set_connection_timeout(5, 0);
    cli->set_read_timeout(60, 0);
    cli->set_write_timeout(10, 0);
    return cli;
}

}  // namespace th_test
