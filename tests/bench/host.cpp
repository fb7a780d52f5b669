#include "host.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace bench {

namespace {

constexpr size_t kMaxHosts = 64;
std::atomic<pid_t> g_hosts[kMaxHosts];
std::string g_pid_file;

void remember(pid_t pid) {
    for (auto &slot : g_hosts) {
        pid_t none = 0;
        if (slot.compare_exchange_strong(none, pid)) break;
    }
    if (!g_pid_file.empty()) {
        std::ofstream out(g_pid_file, std::ios::app);
        out << pid << '\n';
    }
}

void forget(pid_t pid) {
    for (auto &slot : g_hosts) {
        pid_t p = pid;
        if (slot.compare_exchange_strong(p, 0)) break;
    }
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void terminate_all_hosts() noexcept {
    for (auto &slot : g_hosts) {
        pid_t p = slot.load();
        if (p > 0) ::kill(p, SIGTERM);
    }
}

void set_pid_file(const std::string &path) { g_pid_file = path; }

bool HostProcess::start(const HostOptions &o, std::string *error) {
    stop();
    std::vector<std::string> args = {o.binary, "--plugins", o.plugins_dir, "--db", o.db,
                                     "--port", "0",         "--log-level", "warn"};
    args.insert(args.end(), o.extra.begin(), o.extra.end());
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        if (error) *error = "pipe: " + std::string(std::strerror(errno));
        return false;
    }
    log_path_ = o.log_path;
    std::string log = o.log_path.empty() ? "/dev/null" : o.log_path;
    const pid_t parent = ::getpid();
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) {
        if (error) *error = "fork: " + std::string(std::strerror(errno));
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return false;
    }
    if (pid == 0) {
        // Child: only async-signal-safe calls until exec.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);
        int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(out_pipe[1], 1);
        if (logfd >= 0) ::dup2(logfd, 2);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execv(argv[0], argv.data());
        static constexpr char msg[] = "taskhost-bench: cannot execute the host binary\n";
        [[maybe_unused]] ssize_t w = ::write(2, msg, sizeof msg - 1);
        ::_exit(127);
    }
    ::close(out_pipe[1]);
    pid_ = pid;
    remember(pid);

    std::string line;
    bool ok = false;
    const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                   std::chrono::duration<double>(o.start_timeout_s));
    std::string why = "the host exited before it was listening";
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            why = "timed out waiting for the listening line";
            break;
        }
        pollfd pfd{out_pipe[0], POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[512];
        ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        line.append(buf, static_cast<size_t>(n));
        constexpr std::string_view marker = "taskhost listening on http://";
        size_t m = line.find(marker);
        if (m == std::string::npos) continue;
        size_t eol = line.find('\n', m);
        if (eol == std::string::npos) continue;
        startup_ms_ = ms_since(t0);
        std::string_view url(line.data() + m + marker.size(), eol - m - marker.size());
        size_t colon = url.rfind(':');
        int port = 0;
        if (colon != std::string_view::npos) std::from_chars(url.data() + colon + 1, url.data() + url.size(), port);
        if (port <= 0 || port > 65535) {
            why = "cannot read the port from: " + std::string(url);
            break;
        }
        port_ = static_cast<uint16_t>(port);
        ok = true;
        break;
    }
    // The host writes nothing else to stdout; it ignores SIGPIPE.
    ::close(out_pipe[0]);
    if (!ok) {
        if (error) *error = why + "\n--- host log ---\n" + log_tail();
        stop(2);
        return false;
    }
    return true;
}

void HostProcess::stop(double grace_s) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    for (;;) {
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_ || (r < 0 && errno != EINTR)) break;
        if (ms_since(t0) > grace_s * 1000) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    forget(pid_);
    pid_ = -1;
    port_ = 0;
}

ProcessCpu process_cpu(pid_t pid) {
    ProcessCpu cpu;
    if (pid <= 0) return cpu;
    // Fields 14-17 of /proc/<pid>/stat (utime, stime, cutime, cstime), after
    // the parenthesised name (which may hold spaces).
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = text.rfind(')');
    if (close == std::string::npos || close + 2 > text.size()) return cpu;
    std::istringstream fields(text.substr(close + 2));
    std::string skip;
    for (int i = 3; i < 14; ++i) fields >> skip;
    long long utime = 0, stime = 0, cutime = 0, cstime = 0;
    if (!(fields >> utime >> stime >> cutime >> cstime)) return cpu;
    const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    cpu.own_s = static_cast<double>(utime + stime) / ticks;
    cpu.reaped_children_s = static_cast<double>(cutime + cstime) / ticks;
    return cpu;
}

double HostProcess::cpu_seconds() const { return process_cpu(pid_).own_s; }

MemoryFigures HostProcess::memory() const {
    MemoryFigures m;
    if (pid_ <= 0) return m;
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    auto value = [](const std::string &l) {
        long v = -1;
        size_t i = l.find_first_of("0123456789");
        if (i != std::string::npos) std::from_chars(l.data() + i, l.data() + l.size(), v);
        return v;
    };
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) m.vm_rss_kb = value(line);
        else if (line.rfind("RssAnon:", 0) == 0) m.rss_anon_kb = value(line);
        else if (line.rfind("RssFile:", 0) == 0) m.rss_file_kb = value(line);
        else if (line.rfind("VmHWM:", 0) == 0) m.vm_hwm_kb = value(line);
        else if (line.rfind("Threads:", 0) == 0) m.threads = static_cast<int>(value(line));
    }
    return m;
}

int HostProcess::open_fds_to(const std::string &path) const {
    if (pid_ <= 0) return -1;
    std::error_code ec;
    const auto want = std::filesystem::weakly_canonical(path, ec);
    int n = 0;
    std::filesystem::directory_iterator it("/proc/" + std::to_string(pid_) + "/fd", ec), end;
    if (ec) return -1;
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        auto target = std::filesystem::read_symlink(it->path(), ec);
        if (!ec && target == want) ++n;
    }
    return n;
}

HostProcess::Mappings HostProcess::mappings_of(const std::string &path) const {
    Mappings m;
    if (pid_ <= 0) return m;
    std::error_code ec;
    const std::string want = std::filesystem::weakly_canonical(path, ec).string();
    std::ifstream in("/proc/" + std::to_string(pid_) + "/smaps");
    if (!in) return m;
    m.count = 0;
    m.rss_kb = 0;
    bool inside = false;
    std::string line;
    while (std::getline(in, line)) {
        // A mapping header starts with "start-end perms ..." (hex and '-');
        // its path, if any, is the last field.
        const bool header =
            !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < line.find(' ');
        if (header) {
            inside = line.size() >= want.size() && line.compare(line.size() - want.size(), want.size(), want) == 0;
            if (inside) ++m.count;
        } else if (inside && line.rfind("Rss:", 0) == 0) {
            long v = 0;
            size_t i = line.find_first_of("0123456789");
            if (i != std::string::npos) std::from_chars(line.data() + i, line.data() + line.size(), v);
            m.rss_kb += v;
        }
    }
    return m;
}

std::string HostProcess::log_tail(size_t max_bytes) const {
    if (log_path_.empty()) return {};
    std::ifstream in(log_path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    if (s.size() > max_bytes) s = s.substr(s.size() - max_bytes);
    return s;
}

}  // namespace bench
