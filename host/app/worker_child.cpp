#include "app/worker_child.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <taskhost/abi.h>

#include "exec/host_api.hpp"
#include "exec/worker_protocol.hpp"
#include "plugins/descriptor.hpp"

namespace {
bool in_worker = false;
}  // namespace

// LeakSanitizer's exit-time check, in sanitizer builds: off in a worker,
// where a task may end the process anywhere (exit() in plugin code) and the
// host reports how it ended, not what it still held.
extern "C" int __lsan_is_turned_off() { return in_worker ? 1 : 0; }

// The worker's side of a th_call: what its host-service functions need.
struct WorkerCall {
    std::string job_id;
    uint64_t seq = 0;  // the Invoke's; 0 during init (never canceled)
};

namespace taskhost::app {

namespace {

namespace w = exec::worker;

WorkerCall &call_of(th_call *call) { return *reinterpret_cast<WorkerCall *>(call); }
th_call *as_call(WorkerCall &call) { return reinterpret_cast<th_call *>(&call); }

// The worker's end of the channel. Task code may call services from
// threads of its own, so sends and call/reply pairs are serialized.
struct Channel {
    std::mutex mu;
    std::string pending;  // notices not sent yet: they go with the next frame
    w::ControlPage *control = nullptr;
    std::string database_url;
    size_t max_reply = size_t{1} << 40;  // the host is trusted
};
Channel channel;

[[noreturn]] void host_gone() { ::_exit(0); }

void flush_locked() {
    if (channel.pending.empty()) return;
    if (!w::write_all(w::worker_channel_fd, channel.pending)) host_gone();
    channel.pending.clear();
}

// A report the host does not answer. `urgent` ones (progress, log) are
// sent now; a result or an error waits for Done, one write for both.
void notice(w::FrameWriter &frame, bool urgent) {
    std::lock_guard lock(channel.mu);
    channel.pending += frame.finish();
    if (urgent) flush_locked();
}

// A service call: its status, `out` and `err` from the host's Reply.
th_status call_host(w::FrameWriter &frame, th_sink *out, th_sink *err, std::string *out_text = nullptr) {
    std::lock_guard lock(channel.mu);
    channel.pending += frame.finish();
    flush_locked();
    std::optional<w::Frame> reply = w::read_frame(w::worker_channel_fd, channel.max_reply);
    if (!reply || reply->type != w::FrameType::reply) host_gone();
    w::FrameReader in(reply->body);
    const uint32_t status = in.u32();
    const std::string_view text = in.str();
    const std::string_view error = in.str();
    if (!in.complete()) host_gone();
    if (out != nullptr && out->write != nullptr && !text.empty()) out->write(out->opaque, text.data(), text.size());
    if (out_text != nullptr) out_text->assign(text);
    if (err != nullptr && err->write != nullptr && !error.empty()) err->write(err->opaque, error.data(), error.size());
    return static_cast<th_status>(status);
}

w::FrameWriter service(w::Service s) {
    w::FrameWriter f(w::FrameType::call);
    f.u8(static_cast<uint8_t>(s));
    return f;
}

w::FrameWriter report(w::Notice n) {
    w::FrameWriter f(w::FrameType::notice);
    f.u8(static_cast<uint8_t>(n));
    return f;
}

std::string_view text(const char *s) { return s ? std::string_view(s) : std::string_view(); }

void copy_id(char out[27], const std::string &id) {
    const size_t n = std::min<size_t>(id.size(), 26);
    std::memcpy(out, id.data(), n);
    out[n] = '\0';
}

// ---- the host table of a worker: every service forwards to the host ----------

void set_result(th_call *, const char *json, size_t len) {
    auto f = report(w::Notice::set_result);
    f.str(json ? std::string_view(json, len) : std::string_view("null"));
    notice(f, false);
}

void set_error(th_call *, const char *type, const char *message, const char *traceback) {
    auto f = report(w::Notice::set_error);
    f.str(text(type)).str(text(message)).str(text(traceback));
    notice(f, false);
}

void set_error_frames(th_call *, const char *type, const char *message, const th_frame *frames, size_t count,
                      uint32_t flags) {
    auto f = report(w::Notice::set_error_frames);
    count = frames == nullptr ? 0 : std::min<size_t>(count, 256);
    f.str(text(type)).str(text(message)).u32(flags).u32(static_cast<uint32_t>(count));
    for (size_t i = 0; i < count; ++i) f.str(text(frames[i].module)).str(text(frames[i].build_id)).u64(frames[i].offset);
    notice(f, false);
}

const char *job_id(th_call *call) { return call_of(call).job_id.c_str(); }

int is_cancelled(th_call *call) {
    const uint64_t seq = call_of(call).seq;
    return seq != 0 && channel.control->cancel_seq.load(std::memory_order_relaxed) == seq;
}

void report_progress(th_call *, double fraction, const char *message) {
    auto f = report(w::Notice::progress);
    f.f64(fraction).u8(message != nullptr).str(text(message));
    notice(f, true);
}

void log(th_call *, th_log_level level, const char *message) {
    auto f = report(w::Notice::log);
    f.u32(static_cast<uint32_t>(level)).str(text(message));
    notice(f, true);
}

th_status artifact_save(th_call *, const char *data, size_t len, const char *parent_id, char out_id[27],
                        th_sink *err) {
    auto f = service(w::Service::artifact_save);
    f.str(data ? std::string_view(data, len) : std::string_view()).str(text(parent_id));
    std::string id;
    const th_status status = call_host(f, nullptr, err, &id);
    if (status == TH_OK) copy_id(out_id, id);
    return status;
}

th_status artifact_get(th_call *, const char *id, th_sink *out, th_sink *err) {
    auto f = service(w::Service::artifact_get);
    f.str(text(id));
    return call_host(f, out, err);
}

th_status db_query(th_call *, const char *sql, const char *params_json, th_sink *out, th_sink *err) {
    auto f = service(w::Service::db_query);
    f.str(text(sql)).u8(params_json != nullptr).str(text(params_json));
    return call_host(f, out, err);
}

th_status session_begin(th_call *, th_sink *err) {
    auto f = service(w::Service::session_begin);
    return call_host(f, nullptr, err);
}

th_status session_end(th_call *, int commit, th_sink *err) {
    auto f = service(w::Service::session_end);
    f.u8(commit != 0);
    return call_host(f, nullptr, err);
}

const char *database_url(th_call *) { return channel.database_url.c_str(); }

th_status schedule(th_call *, const char *task, const char *params_json, char out_job_id[27], th_sink *err) {
    auto f = service(w::Service::schedule);
    f.str(text(task)).str(text(params_json));
    std::string id;
    const th_status status = call_host(f, nullptr, err, &id);
    if (status == TH_OK) copy_id(out_job_id, id);
    return status;
}

th_status job_get(th_call *, const char *id, th_sink *out, th_sink *err) {
    auto f = service(w::Service::job_get);
    f.str(text(id));
    return call_host(f, out, err);
}

th_host_api forwarding_table() {
    th_host_api api{};
    api.struct_size = sizeof api;
    api.abi_major = TH_ABI_MAJOR;
    api.abi_minor = TH_ABI_MINOR;
    api.set_result = set_result;
    api.set_error = set_error;
    api.job_id = job_id;
    api.is_cancelled = is_cancelled;
    api.report_progress = report_progress;
    api.log = log;
    api.artifact_save = artifact_save;
    api.artifact_get = artifact_get;
    api.db_query = db_query;
    api.session_begin = session_begin;
    api.session_end = session_end;
    api.database_url = database_url;
    api.schedule = schedule;
    api.job_get = job_get;
    api.set_error_frames = set_error_frames;
    return api;
}

void send_now(w::FrameWriter &frame) {
    std::lock_guard lock(channel.mu);
    channel.pending += frame.finish();
    flush_locked();
}

[[noreturn]] void refuse(const std::string &reason) {
    w::FrameWriter f(w::FrameType::init_failed);
    f.str(reason);
    send_now(f);
    ::_exit(3);
}

// Drops to `user`'s uid and gids; why not, if it cannot.
std::string become(const std::string &user) {
    errno = 0;
    const passwd *pw = ::getpwnam(user.c_str());
    if (pw == nullptr) return "no user named '" + user + "'";
    if (::initgroups(pw->pw_name, pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        return "cannot run as '" + user + "': " + std::strerror(errno);
    return {};
}

// The worker's CPU allowance for the next job: what it has used so far
// plus `seconds` (RLIMIT_CPU counts a process's whole life).
void allow_cpu(uint64_t seconds) {
    rusage used{};
    ::getrusage(RUSAGE_SELF, &used);
    const rlim_t spent = static_cast<rlim_t>(used.ru_utime.tv_sec + used.ru_stime.tv_sec);
    const rlimit limit{spent + seconds, spent + seconds + 1};  // SIGXCPU, then SIGKILL a second later
    ::setrlimit(RLIMIT_CPU, &limit);
}

// Runs the task's validate(), if it has one: why the params are refused.
std::optional<std::string> check(const th_task_desc &task, std::string_view params) {
    if (task.validate == nullptr) return std::nullopt;
    std::string message;
    th_sink err = exec::string_sink(message);
    if (task.validate(params.data(), params.size(), &err) == TH_OK) return std::nullopt;
    return message.empty() ? "invalid params" : message;
}

}  // namespace

bool is_worker_child(int argc, char **argv) { return argc == 8 && std::strcmp(argv[1], w::mode_argument) == 0; }

int run_worker_child(int, char **argv) {
    // argv: __worker FILE HOST_PID MEMORY_BYTES CPU_SECONDS USER DATABASE_URL
    in_worker = true;
    const std::string file = argv[2];
    const pid_t host = static_cast<pid_t>(std::atoll(argv[3]));
    const uint64_t memory_bytes = std::strtoull(argv[4], nullptr, 10);
    const uint64_t cpu_seconds = std::strtoull(argv[5], nullptr, 10);
    const std::string user = argv[6];
    channel.database_url = argv[7];

    // Dies with the host (the spawning thread lives as long as the host).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != host) return 1;  // it went before that took effect
    // Nothing of the host's but the image, the channel and the control
    // page, and none of them for processes the plugin might start.
    ::close_range(w::worker_control_fd + 1, ~0U, 0);
    for (int fd : {w::worker_image_fd, w::worker_channel_fd, w::worker_control_fd}) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // a crash is reported, not dumped
    void *page = ::mmap(nullptr, sizeof(w::ControlPage), PROT_READ | PROT_WRITE, MAP_SHARED, w::worker_control_fd, 0);
    if (page == MAP_FAILED) refuse(std::string("cannot map the control page: ") + std::strerror(errno));
    channel.control = static_cast<w::ControlPage *>(page);
    if (user != "-")
        if (std::string why = become(user); !why.empty()) refuse(why);

    void *library = ::dlopen(w::worker_image_path, RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        const char *why = ::dlerror();
        refuse(std::string("not a loadable shared library: ") + (why ? why : "dlopen failed"));
    }
    using Entry = const th_plugin_desc *(*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(library, TH_PLUGIN_ENTRY_NAME));
    if (entry == nullptr) refuse(std::string("no entry symbol ") + TH_PLUGIN_ENTRY_NAME);
    Result<std::unique_ptr<const plugins::Descriptor>> descriptor = plugins::read_descriptor(entry());
    if (!descriptor) refuse(descriptor.error().message);
    const th_plugin_desc &desc = (*descriptor)->plugin();
    std::map<std::string, const th_task_desc *, std::less<>> tasks;
    for (uint32_t i = 0; i < desc.task_count; ++i) tasks.emplace(desc.tasks[i].name, &desc.tasks[i]);

    const th_host_api api = forwarding_table();
    if (desc.init != nullptr) {
        WorkerCall init_call;
        std::string error;
        th_sink err = exec::string_sink(error);
        if (desc.init(&api, as_call(init_call), &err) != TH_OK)
            refuse(error.empty() ? "init returned an error without a message" : error);
    }
    if (memory_bytes > 0) {
        const rlimit limit{memory_bytes, memory_bytes};
        ::setrlimit(RLIMIT_AS, &limit);
    }
    {
        w::FrameWriter ready(w::FrameType::ready);
        send_now(ready);
    }

    for (;;) {
        std::optional<w::Frame> frame = w::read_frame(w::worker_channel_fd, channel.max_reply);
        if (!frame) break;  // the host closed its end: shut down
        w::FrameReader in(frame->body);
        if (frame->type == w::FrameType::invoke) {
            WorkerCall call;
            call.seq = in.u64();
            const bool check_params = in.u8() != 0;
            const std::string_view task_name = in.str();
            call.job_id.assign(in.str());
            const std::string_view params = in.str();
            if (!in.complete()) break;
            const auto task = tasks.find(task_name);
            // The check is the job's code too: under its CPU allowance.
            if (cpu_seconds > 0 && task != tasks.end()) allow_cpu(cpu_seconds);
            if (check_params && task != tasks.end()) {
                if (std::optional<std::string> refused = check(*task->second, params)) {
                    w::FrameWriter validated(w::FrameType::validated);
                    validated.u32(static_cast<uint32_t>(TH_INVALID)).str(*refused);
                    send_now(validated);
                    continue;
                }
            }
            th_status status = TH_ERROR;
            const auto invoked = std::chrono::steady_clock::now();
            if (task != tasks.end()) {
                status = task->second->invoke(&api, as_call(call), params.data(), params.size());
            } else {
                set_error(as_call(call), "taskhost::UnknownTask", "the worker's plugin has no such task", "");
            }
            w::FrameWriter done(w::FrameType::done);
            const auto ran = std::chrono::steady_clock::now() - invoked;
            done.u32(static_cast<uint32_t>(status))
                .u64(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(ran).count()));
            send_now(done);
        } else if (frame->type == w::FrameType::validate) {
            const std::string_view task_name = in.str();
            const std::string_view params = in.str();
            if (!in.complete()) break;
            std::optional<std::string> refused;
            if (auto it = tasks.find(task_name); it != tasks.end()) refused = check(*it->second, params);
            w::FrameWriter validated(w::FrameType::validated);
            validated.u32(static_cast<uint32_t>(refused ? TH_INVALID : TH_OK)).str(refused.value_or(""));
            send_now(validated);
        } else {
            break;
        }
    }
    if (desc.shutdown != nullptr) desc.shutdown();
    ::_exit(0);
}

}  // namespace taskhost::app
