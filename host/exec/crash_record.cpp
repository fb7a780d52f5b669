#include "exec/crash_record.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "util/text.hpp"

namespace taskhost::exec {

namespace {

// One thread's plugin code: its record line. `claimed` hands the slot to
// one thread; the line is written before `used` shows it to the handler.
struct Slot {
    std::atomic<bool> claimed{false};
    std::atomic<bool> used{false};
    size_t len = 0;
    char line[1024];
};

// Set up once by install() before any plugin code runs; read by handlers.
Slot *g_slots = nullptr;
size_t g_slot_count = 0;
char g_path[4096] = {};
std::atomic<bool> g_installed{false};
std::atomic<bool> g_normal_exit{false};
std::atomic<bool> g_written{false};  // the first fatal event writes; a second one in another thread does not
thread_local int t_slot = -1;        // the slot of the plugin code this thread runs, or -1

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
constexpr int kExitStatusAfterExit = 70;  // EX_SOFTWARE: a supervisor restarts on it

const char *signal_name(int sig) {
    switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGBUS: return "SIGBUS";
        case SIGILL: return "SIGILL";
        case SIGFPE: return "SIGFPE";
        case SIGABRT: return "SIGABRT";
        case SIGTRAP: return "SIGTRAP";
        case SIGSYS: return "SIGSYS";
        default: return "a fatal signal";
    }
}

// ---- async-signal-safe writing -------------------------------------------------

void put(int fd, const char *text, size_t len) {
    while (fd >= 0 && len > 0) {
        const ssize_t n = ::write(fd, text, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        len -= static_cast<size_t>(n);
    }
}
void put(int fd, const char *text) { put(fd, text, std::strlen(text)); }
void put_number(int fd, int value) {
    char buf[16];
    size_t i = sizeof buf;
    unsigned v = value < 0 ? 0u : static_cast<unsigned>(value);
    do {
        buf[--i] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0 && i > 0);
    put(fd, buf + i, sizeof buf - i);
}

// The record: a header, the cause, then one line per plugin code in flight,
// "culprit" for the thread that died.
void write_record(int fd, int sig) {
    put(fd, "taskhost crash record 1\n");
    if (sig != 0) {
        put(fd, "signal\t");
        put_number(fd, sig);
        put(fd, "\n");
    } else {
        put(fd, "exit\n");
    }
    for (size_t i = 0; i < g_slot_count; ++i) {
        const Slot &slot = g_slots[i];
        if (!slot.used.load(std::memory_order_acquire)) continue;
        put(fd, static_cast<int>(i) == t_slot ? "culprit\t" : "running\t");
        put(fd, slot.line, slot.len);
        put(fd, "\n");
    }
}

// Says what happened on stderr (the host's log) and, when there is a path,
// in the record file.
void record(int sig) {
    if (g_written.exchange(true)) return;
    put(STDERR_FILENO, "taskhost: ");
    if (sig != 0) {
        put(STDERR_FILENO, "fatal signal ");
        put(STDERR_FILENO, signal_name(sig));
    } else {
        put(STDERR_FILENO, "exit() called by plugin code");
    }
    if (t_slot >= 0) {
        put(STDERR_FILENO, " while running ");
        put(STDERR_FILENO, g_slots[t_slot].line, g_slots[t_slot].len);
    }
    put(STDERR_FILENO, "\n");
    if (g_path[0] == '\0') return;
    const int fd = ::open(g_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return;
    write_record(fd, sig);
    ::fsync(fd);
    ::close(fd);
}

void on_fatal_signal(int sig, siginfo_t *, void *) {
    record(sig);
    // SA_RESETHAND has restored the default action: the signal, pending until
    // this handler returns, ends the process as it would have.
    ::raise(sig);
}

void on_exit() {
    if (g_normal_exit.load()) return;
    bool plugin_code_running = false;
    for (size_t i = 0; i < g_slot_count; ++i) plugin_code_running |= g_slots[i].used.load(std::memory_order_acquire);
    if (!plugin_code_running) return;
    record(0);
    ::_exit(kExitStatusAfterExit);
}

// A signal stack of this thread's own, so that a handler still runs after
// plugin code overflowed the thread's stack.
struct AltStack {
    static constexpr size_t kSize = 64 * 1024;
    std::unique_ptr<char[]> memory{new char[kSize]};
    AltStack() {
        stack_t ss{};
        ss.ss_sp = memory.get();
        ss.ss_size = kSize;
        ::sigaltstack(&ss, nullptr);
    }
    ~AltStack() {
        stack_t ss{};
        ss.ss_flags = SS_DISABLE;
        ::sigaltstack(&ss, nullptr);
    }
};

// Writes "key<TAB>value" fields into a slot's line, cut at its size. Tabs
// and line ends separate the record's fields and lines, so control
// characters in a value become spaces.
class LineWriter {
public:
    explicit LineWriter(Slot &slot) : slot_(slot) { slot_.len = 0; }
    void field(std::string_view key, std::string_view value) {
        if (value.empty()) return;
        if (slot_.len > 0) put('\t');
        for (char c : key) put(c);
        put('\t');
        for (char c : value) put(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
    }

private:
    void put(char c) {
        if (slot_.len < sizeof slot_.line) slot_.line[slot_.len++] = c;
    }
    Slot &slot_;
};

}  // namespace

void CrashRecord::install(const std::string &path, size_t slots) {
    if (g_installed.exchange(true)) return;
    std::strncpy(g_path, path.c_str(), sizeof g_path - 1);
    g_slot_count = slots;
    g_slots = new Slot[slots];  // lives as long as the process: handlers may read it at any time
    for (int sig : kFatalSignals) {
        struct sigaction action {};
        action.sa_sigaction = on_fatal_signal;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
        sigemptyset(&action.sa_mask);
        ::sigaction(sig, &action, nullptr);
    }
    std::atexit(on_exit);
}

void CrashRecord::exiting_normally() { g_normal_exit.store(true); }

CrashRecord::Running::Running(const Target &target, std::string_view job_id) {
    if (!g_installed.load() || t_slot >= 0) return;  // not installed, or nested (init during a task)
    thread_local AltStack alt_stack;
    for (size_t i = 0; i < g_slot_count; ++i) {
        bool free = false;
        if (!g_slots[i].claimed.load(std::memory_order_relaxed) &&
            g_slots[i].claimed.compare_exchange_strong(free, true, std::memory_order_acquire)) {
            Slot &slot = g_slots[i];
            LineWriter line(slot);
            line.field("job", job_id);
            line.field("task", target.task);
            line.field("plugin", target.plugin);
            line.field("version", target.version);
            line.field("file", target.file);
            line.field("hash", target.hash);
            line.field("tasks", target.tasks_json);
            slot.used.store(true, std::memory_order_release);
            slot_ = static_cast<int>(i);
            t_slot = slot_;
            return;
        }
    }
}

CrashRecord::Running::~Running() {
    if (slot_ < 0) return;
    g_slots[slot_].used.store(false, std::memory_order_release);
    g_slots[slot_].claimed.store(false, std::memory_order_release);
    t_slot = -1;
}

std::optional<Crash> CrashRecord::take(const std::string &path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::stringstream text;
    text << in.rdbuf();
    in.close();
    ::unlink(path.c_str());
    Crash crash;
    bool valid = false;
    std::istringstream lines(text.str());
    for (std::string line; std::getline(lines, line);) {
        const auto fields = split(line, '\t');
        if (fields[0] == "taskhost crash record 1") {
            valid = true;
        } else if (fields[0] == "signal" && fields.size() == 2) {
            crash.signal = std::atoi(std::string(fields[1]).c_str());
            crash.cause = std::string(signal_name(crash.signal)) + " (signal " + std::to_string(crash.signal) + ")";
        } else if (fields[0] == "exit") {
            crash.cause = "exit() called by plugin code";
        } else if ((fields[0] == "culprit" || fields[0] == "running") && fields.size() % 2 == 1) {
            CodeInFlight code;
            for (size_t k = 1; k + 1 < fields.size(); k += 2) {
                const std::string value(fields[k + 1]);
                if (fields[k] == "job") code.job_id = value;
                else if (fields[k] == "task") code.task = value;
                else if (fields[k] == "plugin") code.plugin = value;
                else if (fields[k] == "version") code.version = value;
                else if (fields[k] == "file") code.file = value;
                else if (fields[k] == "hash") code.hash = value;
                else if (fields[k] == "tasks") code.tasks_json = value;
            }
            if (fields[0] == "culprit") crash.culprit = std::move(code);
            else crash.others.push_back(std::move(code));
        }
    }
    if (!valid || crash.cause.empty()) return std::nullopt;
    return crash;
}

}  // namespace taskhost::exec
