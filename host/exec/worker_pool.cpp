#include "exec/worker_pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "util/clock.hpp"
#include "util/spawn_child.hpp"
#include "util/thread_name.hpp"


namespace taskhost::exec {

using worker::Frame;
using worker::FrameType;
using worker::FrameWriter;

namespace {

std::string signal_name(int sig) {
    const char *abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// "SIGSEGV", "exit status 3": how a process ended, from waitpid's status.
std::string describe_end(int status) {
    if (WIFSIGNALED(status)) return signal_name(WTERMSIG(status));
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    return "an unknown end";
}

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Resident memory of `pid` in bytes, 0 if unknown.
uint64_t rss_of(pid_t pid) {
    std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
    uint64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) return 0;
    return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

// One worker process and the host's end of its channel. Used by one thread
// at a time (the one running a job on it, or the pool), except for kill().
class WorkerProcess {
public:
    enum class State { starting, idle, busy };

    WorkerProcess(pid_t pid, UniqueFd channel, UniqueFd control_fd, worker::ControlPage *control, const Target &target,
                  size_t max_frame)
        : pid_(pid),
          channel_(std::move(channel)),
          inbox_(max_frame),
          control_fd_(std::move(control_fd)),
          control_(control),
          generation_(target.generation),
          alive_(target.generation_alive),
          plugin_(target.plugin),
          version_(target.version),
          file_(target.file),
          started_at_us_(now_us()) {}

    ~WorkerProcess() {
        channel_.reset();  // asks it to shut down
        if (!reaped_) {
            // Not waited for: a worker that does not exit at once is killed.
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) != pid_) {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
                while (::waitpid(pid_, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
                    ::usleep(1000);
                if (::waitpid(pid_, &status, WNOHANG) == 0) {
                    ::kill(pid_, SIGKILL);
                    ::waitpid(pid_, &status, 0);
                }
            }
        }
        if (control_ != nullptr) ::munmap(control_, sizeof(worker::ControlPage));
    }

    pid_t pid() const { return pid_; }
    uint64_t generation() const { return generation_; }
    bool generation_gone() const { return alive_.expired(); }
    const std::string &plugin() const { return plugin_; }
    const std::string &version() const { return version_; }
    const std::string &file() const { return file_; }
    int64_t started_at_us() const { return started_at_us_; }
    uint64_t jobs_served() const { return jobs_served_.load(std::memory_order_relaxed); }

    // Waits for Ready, serving what init() calls meanwhile; why not.
    Result<void> greet(HostApi &host_api, const Target &target, std::chrono::milliseconds timeout);

    // Runs one job on it; `died` says whether the worker is gone after.
    model::TaskOutcome run(HostApi &host_api, const Target &target, const std::string &job_id,
                           std::string_view params_json, bool check_params, JobContext &job, bool &died);
    Result<void> validate(const Target &target, std::string_view params_json, bool &died);

    // Kills it (any thread); the thread running a job on it sees it end.
    // `given_up`: the job was given up on (its end is recorded elsewhere).
    void kill(std::string why, bool given_up = false) {
        {
            std::lock_guard lock(kill_mu_);
            if (kill_reason_.empty()) {
                kill_reason_ = std::move(why);
                given_up_ = given_up;
            }
        }
        ::kill(pid_, SIGKILL);
    }
    bool given_up() const {
        std::lock_guard lock(kill_mu_);
        return given_up_;
    }
    std::string kill_reason() const {
        std::lock_guard lock(kill_mu_);
        return kill_reason_;
    }
    // Reaps it (it is dead or dying); how it ended.
    std::string reap() {
        int status = 0;
        if (!reaped_) {
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            reaped_ = true;
            end_ = describe_end(status);
            signaled_ = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        }
        return end_;
    }
    int end_signal() const { return signaled_; }

    std::atomic<State> state{State::starting};
    std::string current_job;  // (the pool's mu_)

private:
    // Serves one Call or Notice frame for `call`; false on a malformed one.
    bool serve(HostApi &host_api, th_call &call, const Frame &frame);
    std::optional<Frame> next_frame(std::string &error) { return inbox_.read(channel_.get(), &error); }
    // Waits up to `timeout_ms` for a frame; false if none came.
    bool frame_within(int timeout_ms);

    const pid_t pid_;
    UniqueFd channel_;
    worker::FrameInbox inbox_;
    UniqueFd control_fd_;
    worker::ControlPage *control_;
    const uint64_t generation_;
    const std::weak_ptr<const void> alive_;
    const std::string plugin_, version_, file_;
    const int64_t started_at_us_;
    std::atomic<uint64_t> jobs_served_{0};
    uint64_t next_seq_ = 0;
    bool reaped_ = false;
    std::string end_;
    int signaled_ = 0;
    mutable std::mutex kill_mu_;
    std::string kill_reason_;
    bool given_up_ = false;
};

namespace {

th_sink sink_to(std::string &s) { return string_sink(s); }

}  // namespace

bool WorkerProcess::serve(HostApi &host_api, th_call &call, const Frame &frame) {
    namespace notice = worker::notice;
    namespace request = worker::call;
    const th_host_api &api = host_api.table();
    if (frame.type == FrameType::notice) {
        const std::optional<worker::NoticeFields> fields = worker::decode_notice(frame.body);
        if (!fields) return false;
        if (const auto *n = std::get_if<notice::SetResult>(&*fields)) {
            api.set_result(&call, n->json.data(), n->json.size());
        } else if (const auto *n = std::get_if<notice::SetError>(&*fields)) {
            api.set_error(&call, n->type.c_str(), n->message.c_str(), n->traceback.c_str());
        } else if (const auto *n = std::get_if<notice::SetErrorFrames>(&*fields)) {
            std::vector<th_frame> frames(n->frames.size());
            for (size_t i = 0; i < frames.size(); ++i) {
                frames[i].module = n->frames[i].module.c_str();
                frames[i].build_id = n->frames[i].build_id.c_str();
                frames[i].offset = n->frames[i].offset;
            }
            api.set_error_frames(&call, n->type.c_str(), n->message.c_str(), frames.data(), frames.size(), n->flags);
        } else if (const auto *n = std::get_if<notice::Progress>(&*fields)) {
            api.report_progress(&call, n->fraction, n->has_message ? n->message.c_str() : nullptr);
        } else if (const auto *n = std::get_if<notice::Log>(&*fields)) {
            // A level the ABI does not name is logged at info, not cast into
            // the enum (a value outside it is undefined behaviour).
            const th_log_level level = n->level <= TH_LOG_ERROR ? static_cast<th_log_level>(n->level) : TH_LOG_INFO;
            api.log(&call, level, n->message.c_str());
        }
        return true;
    }
    if (frame.type != FrameType::call) return false;
    const std::optional<worker::CallFields> fields = worker::decode_call(frame.body);
    if (!fields) return false;
    std::string out, err;
    th_sink out_sink = sink_to(out), err_sink = sink_to(err);
    th_status status = TH_INVALID;
    if (const auto *c = std::get_if<request::ArtifactSave>(&*fields)) {
        char id[27] = {};
        status = api.artifact_save(&call, c->data_json.data(), c->data_json.size(),
                                   c->parent_id.empty() ? nullptr : c->parent_id.c_str(), id, &err_sink);
        if (status == TH_OK) out = id;
    } else if (const auto *c = std::get_if<request::ArtifactGet>(&*fields)) {
        status = api.artifact_get(&call, c->id.c_str(), &out_sink, &err_sink);
    } else if (const auto *c = std::get_if<request::DbQuery>(&*fields)) {
        status = api.db_query(&call, c->sql.c_str(), c->has_params ? c->params.c_str() : nullptr, &out_sink, &err_sink);
    } else if (std::holds_alternative<request::SessionBegin>(*fields)) {
        status = api.session_begin(&call, &err_sink);
    } else if (const auto *c = std::get_if<request::SessionEnd>(&*fields)) {
        status = api.session_end(&call, c->commit ? 1 : 0, &err_sink);
    } else if (const auto *c = std::get_if<request::Schedule>(&*fields)) {
        char id[27] = {};
        status = api.schedule(&call, c->task.c_str(), c->params.c_str(), id, &err_sink);
        if (status == TH_OK) out = id;
    } else if (const auto *c = std::get_if<request::JobGet>(&*fields)) {
        status = api.job_get(&call, c->job_id.c_str(), &out_sink, &err_sink);
    }
    FrameWriter reply(FrameType::reply);
    reply.u32(static_cast<uint32_t>(status)).str(out).str(err);
    // A worker that is gone shows at the next read.
    (void)worker::write_all(channel_.get(), reply.finish());
    return true;
}

bool WorkerProcess::frame_within(int timeout_ms) {
    if (inbox_.has_frame()) return true;
    pollfd p{channel_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, timeout_ms);
    return ready > 0 || (ready < 0 && errno != EINTR);  // an error shows at the read
}

Result<void> WorkerProcess::greet(HostApi &host_api, const Target &target, std::chrono::milliseconds timeout) {
    th_call call;
    host_api.open_call(call, target, "", nullptr);
    call.log_name = target.file;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (!frame_within(static_cast<int>(std::max<int64_t>(left.count(), 0)))) {
            if (std::chrono::steady_clock::now() < deadline) continue;  // woken by a signal
            kill("it did not start within " + std::to_string(timeout.count()) + " ms");
            host_api.close_call(call, TH_OK);
            return fail(ErrorKind::unavailable, "the worker process did not start within " +
                                                    std::to_string(timeout.count()) + " ms (loading or init())");
        }
        std::string error;
        std::optional<Frame> frame = next_frame(error);
        if (!frame) {
            ::kill(pid_, SIGKILL);
            host_api.close_call(call, TH_OK);
            return fail(ErrorKind::unavailable, "the worker process ended while starting: " + reap());
        }
        if (frame->type == FrameType::ready) {
            host_api.close_call(call, TH_OK);
            return {};
        }
        if (frame->type == FrameType::init_failed) {
            if (const std::optional<std::string> reason = worker::decode_init_failed(frame->body)) {
                host_api.close_call(call, TH_OK);
                return fail(ErrorKind::invalid, "init failed in the worker process: " + *reason);
            }
        }
        if (frame->type == FrameType::init_failed || !serve(host_api, call, *frame)) {
            ::kill(pid_, SIGKILL);
            host_api.close_call(call, TH_OK);
            return fail(ErrorKind::unavailable, "the worker process broke the protocol while starting");
        }
    }
}

model::TaskOutcome WorkerProcess::run(HostApi &host_api, const Target &target, const std::string &job_id,
                                      std::string_view params_json, bool check_params, JobContext &job, bool &died) {
    died = false;
    const uint64_t seq = ++next_seq_;
    th_call call;
    host_api.open_call(call, target, job_id, &job);
    FrameWriter invoke(FrameType::invoke);
    invoke.u64(seq).u8(check_params ? 1 : 0).str(target.task).str(job_id).str(params_json);
    std::string error;
    bool cancel_sent = false;
    std::optional<th_status> done;
    uint64_t run_us = 0;
    bool first_frame = true;  // a refusal of the params comes first, or not at all
    if (worker::write_all(channel_.get(), invoke.finish())) {
        while (!done) {
            if (!cancel_sent) {
                if (job.cancelled()) {
                    control_->cancel_seq.store(seq, std::memory_order_relaxed);
                    cancel_sent = true;
                } else if (!frame_within(20)) {
                    continue;  // cancellation is polled from the job: look again every tick
                }
            }
            std::optional<Frame> frame = next_frame(error);
            if (!frame) break;
            if (frame->type == FrameType::done) {
                const std::optional<worker::Done> ended = worker::decode_done(frame->body);
                if (!ended) {
                    error = "a malformed Done";
                    break;
                }
                // Any status but TH_OK fails the job; one the ABI does not
                // name is not cast into the enum (undefined behaviour).
                done = ended->status <= TH_UNSUPPORTED ? static_cast<th_status>(ended->status) : TH_ERROR;
                run_us = ended->run_us;
            } else if (frame->type == FrameType::validated && check_params && first_frame) {
                // The params were refused: the task did not run.
                const std::optional<worker::Validated> refused = worker::decode_validated(frame->body);
                if (!refused || refused->status == TH_OK) {
                    error = "a malformed Validated";
                    break;
                }
                if (!kill_reason().empty()) break;  // given up on meanwhile: it ends killed
                host_api.close_call(call, TH_OK);
                model::TaskOutcome out;
                out.params_refused = refused->message.empty() ? "invalid params" : std::string(refused->message);
                return out;
            } else if (!serve(host_api, call, *frame)) {
                error = "a malformed frame";
                break;
            }
            first_frame = false;
        }
    }
    ++jobs_served_;  // (a job whose params it refused is not one)
    // Done, unless it was killed meanwhile (given up on): then the giver-up
    // records the end, and the worker is not used again.
    if (done && kill_reason().empty()) {
        model::TaskOutcome out = host_api.close_call(call, *done);
        // The worker's word, bounded: it only decides whether a submitter
        // may run the next job of this task on its own thread.
        out.code_us = static_cast<int64_t>(std::min<uint64_t>(run_us, uint64_t{1} << 40));
        return out;
    }

    // Gone (or broke the protocol): the job fails with how it ended.
    died = true;
    const bool protocol = !error.empty() && error != "the channel closed" && !error.starts_with("recv");
    ::kill(pid_, SIGKILL);
    const std::string end = reap();
    model::TaskOutcome out = host_api.close_call(call, TH_OK);
    out.has_result = false;
    out.has_error = true;
    out.result_json.clear();
    out.error_traceback.clear();
    const std::string killed = kill_reason();
    if (!killed.empty()) {
        out.error_type = "taskhost::WorkerKilled";
        out.error_message = killed;
        out.given_up = given_up();
    } else if (protocol) {
        out.error_type = "taskhost::WorkerProtocolError";
        out.error_message = "the worker process running task '" + std::string(target.task) + "' of plugin " +
                            plugin_ + " " + version_ + " sent " + error + "; it was killed";
    } else {
        out.error_type = "taskhost::WorkerCrashed";
        out.error_message = "worker crashed: " + end + " while running task '" + std::string(target.task) +
                            "' of plugin " + plugin_ + " " + version_;
    }
    return out;
}

Result<void> WorkerProcess::validate(const Target &target, std::string_view params_json, bool &died) {
    died = false;
    FrameWriter request(FrameType::validate);
    request.str(target.task).str(params_json);
    std::string error;
    if (worker::write_all(channel_.get(), request.finish())) {
        if (std::optional<Frame> frame = next_frame(error); frame && frame->type == FrameType::validated) {
            if (const std::optional<worker::Validated> v = worker::decode_validated(frame->body)) {
                if (v->status == TH_OK) return {};
                return fail(ErrorKind::invalid, v->message.empty() ? "invalid params" : std::string(v->message));
            }
        }
    }
    died = true;
    ::kill(pid_, SIGKILL);
    return fail(ErrorKind::unavailable, "the worker process checking params for task '" + std::string(target.task) +
                                            "' of plugin " + plugin_ + " " + version_ + " ended: " + reap());
}

// ---- the pool ------------------------------------------------------------------------

struct WorkerPool::Spawned {
    pid_t pid = -1;
    UniqueFd channel, control_fd;
    worker::ControlPage *control = nullptr;
};

struct WorkerPool::Replacement {
    // The target's text, owned: the job it came from has ended.
    std::string task, plugin, version, file, hash, tasks_json;
    Target target;
    std::chrono::steady_clock::time_point due;

    explicit Replacement(const Target &from)
        : task(from.task),
          plugin(from.plugin),
          version(from.version),
          file(from.file),
          hash(from.hash),
          tasks_json(from.tasks_json),
          target(from) {
        target.task = task;
        target.plugin = plugin;
        target.version = version;
        target.file = file;
        target.hash = hash;
        target.tasks_json = tasks_json;
    }
};

struct WorkerPool::SpawnRequest {
    const Target *target = nullptr;
    std::promise<Result<Spawned>> result;
};

WorkerPool::WorkerPool(HostApi &host_api, WorkerPoolOptions options, WorkerFault on_fault)
    : host_api_(host_api), options_(std::move(options)), on_fault_(std::move(on_fault)) {
    spawner_ = std::thread([this] { spawner_loop(); });
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::stop() {
    std::deque<std::shared_ptr<WorkerProcess>> idle;
    std::map<uint64_t, std::shared_ptr<Validator>> validators;
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
        idle.swap(idle_);
        validators.swap(validators_);
        for (auto &[job, worker] : busy_) worker->kill("the host stopped");
    }
    idle.clear();  // each exits (closed channel), or is killed
    validators.clear();  // (a check under way holds its own)
    {
        std::lock_guard lock(spawn_mu_);
        spawner_stop_ = true;
        replacements_.clear();
    }
    spawn_cv_.notify_all();
    if (spawner_.joinable()) spawner_.join();
}

void WorkerPool::spawner_loop() {
    name_this_thread("th-spawner");
    for (;;) {
        SpawnRequest *request = nullptr;
        {
            std::unique_lock lock(spawn_mu_);
            auto wake = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            for (const auto &[generation, r] : replacements_) wake = std::min(wake, r->due);
            // A replacement added meanwhile may be due before `wake`: look again.
            const uint64_t replacements_seen = replacements_added_;
            spawn_cv_.wait_until(lock, wake, [&] {
                return spawner_stop_ || !spawn_queue_.empty() || replacements_added_ != replacements_seen;
            });
            if (spawner_stop_) {
                for (SpawnRequest *r : spawn_queue_)
                    r->result.set_value(fail(ErrorKind::unavailable, "the host is shutting down"));
                spawn_queue_.clear();
                return;
            }
            if (!spawn_queue_.empty()) {
                request = spawn_queue_.front();
                spawn_queue_.pop_front();
            }
        }
        if (request != nullptr) {
            request->result.set_value(spawn_on_spawner(*request->target));
            continue;  // a job is waiting for it: replacements can wait
        }
        start_due_replacements();
        sweep();
    }
}

void WorkerPool::replace_after_crash(const Target &target) {
    int streak;
    {
        std::lock_guard lock(mu_);
        streak = ++crash_streak_[target.generation];
    }
    auto replacement = std::make_shared<Replacement>(target);
    // At once after one crash; then 50 ms, 100 ms, ... up to 5 s.
    const std::chrono::milliseconds delay(streak <= 1 ? 0 : std::min<int64_t>(int64_t{25} << std::min(streak - 1, 8), 5000));
    replacement->due = std::chrono::steady_clock::now() + delay;
    {
        std::lock_guard lock(spawn_mu_);
        if (spawner_stop_) return;
        replacements_[target.generation] = std::move(replacement);
        ++replacements_added_;
    }
    spawn_cv_.notify_one();
}

void WorkerPool::start_due_replacements() {
    std::vector<std::shared_ptr<Replacement>> due;
    {
        std::lock_guard lock(spawn_mu_);
        const auto now = std::chrono::steady_clock::now();
        std::erase_if(replacements_, [&](auto &entry) {
            if (entry.second->due > now) return false;
            due.push_back(std::move(entry.second));
            return true;
        });
    }
    for (const auto &r : due) {
        if (r->target.generation_alive == nullptr) continue;
        {
            std::lock_guard lock(mu_);
            if (stopping_) return;
            // A job started one meanwhile: enough.
            if (std::any_of(idle_.begin(), idle_.end(),
                            [&](const auto &w) { return w->generation() == r->target.generation; }))
                continue;
        }
        Result<std::shared_ptr<WorkerProcess>> started = start(r->target, true);
        if (started) give_back(std::move(*started));
    }
}

Result<WorkerPool::Spawned> WorkerPool::spawn_on_spawner(const Target &target) {
    auto internal = [](const std::string &what) {
        return fail(ErrorKind::unavailable, "cannot start a worker process: " + what + ": " + std::strerror(errno));
    };
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return internal("socketpair");
    UniqueFd host_end(pair[0]), worker_end(pair[1]);
    UniqueFd control_fd(::memfd_create("taskhost-worker-control", MFD_CLOEXEC));
    if (!control_fd || ::ftruncate(control_fd.get(), sizeof(worker::ControlPage)) != 0) return internal("memfd");
    void *page = ::mmap(nullptr, sizeof(worker::ControlPage), PROT_READ | PROT_WRITE, MAP_SHARED, control_fd.get(), 0);
    if (page == MAP_FAILED) return internal("mmap");
    auto *control = new (page) worker::ControlPage();
    const WorkerLimits &limits = options_.limits;
    const pid_t pid = spawn_child(options_.binary,
                                  {options_.binary, worker::mode_argument, std::string(target.file),
                                   std::to_string(::getpid()), std::to_string(limits.memory_bytes),
                                   std::to_string(limits.cpu_seconds), limits.user.empty() ? "-" : limits.user,
                                   host_api_.store().url()},
                                  {{target.image_fd, worker::worker_image_fd},
                                   {worker_end.get(), worker::worker_channel_fd},
                                   {control_fd.get(), worker::worker_control_fd}});
    if (pid < 0) {
        const int error = errno;
        ::munmap(page, sizeof(worker::ControlPage));
        errno = error;
        return internal(options_.binary);
    }
    Spawned out;
    out.pid = pid;
    out.channel = std::move(host_end);
    out.control_fd = std::move(control_fd);
    out.control = control;
    return out;
}

Result<std::shared_ptr<WorkerProcess>> WorkerPool::start(const Target &target, bool on_spawner) {
    if (target.image_fd < 0) return fail(ErrorKind::internal, "the plugin has no image to start a worker from");
    Result<Spawned> spawned = fail(ErrorKind::internal, "not spawned");
    if (on_spawner) {
        spawned = spawn_on_spawner(target);
    } else {
        SpawnRequest request;
        request.target = &target;
        auto result = request.result.get_future();
        {
            std::lock_guard lock(spawn_mu_);
            if (spawner_stop_) return fail(ErrorKind::unavailable, "the host is shutting down");
            spawn_queue_.push_back(&request);
        }
        spawn_cv_.notify_one();
        spawned = result.get();
    }
    if (!spawned) return std::move(spawned).error();
    auto worker = std::make_shared<WorkerProcess>(spawned->pid, std::move(spawned->channel),
                                                  std::move(spawned->control_fd), spawned->control, target,
                                                  options_.max_frame);
    {
        std::lock_guard lock(mu_);
        ++stats_.started;
        starting_.push_back(worker);
    }
    Result<void> greeted = worker->greet(host_api_, target, options_.start_timeout);
    {
        std::lock_guard lock(mu_);
        std::erase(starting_, worker);
    }
    if (!greeted) {
        if (!worker->kill_reason().empty()) {
            std::lock_guard lock(mu_);
            ++stats_.killed_by_reason["start_timeout"];
        }
        spdlog::error("plugin {} {} ({}): {}", target.plugin, target.version, target.file, greeted.error().message);
        return std::move(greeted).error();
    }
    spdlog::debug("worker process {} serves plugin {} generation {}", worker->pid(), target.file, target.generation);
    return worker;
}

std::shared_ptr<WorkerProcess> WorkerPool::take_idle(const Target &target) {
    std::lock_guard lock(mu_);
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
        if ((*it)->generation() == target.generation) {
            auto worker = std::move(*it);
            idle_.erase(it);
            return worker;
        }
    }
    return nullptr;
}

void WorkerPool::give_back(std::shared_ptr<WorkerProcess> worker) {
    std::shared_ptr<WorkerProcess> evicted;
    {
        std::lock_guard lock(mu_);
        const bool worn = options_.limits.max_jobs > 0 && worker->jobs_served() >= options_.limits.max_jobs;
        if (worn) ++stats_.recycled;
        if (stopping_ || worn || worker->generation_gone()) return;  // released outside: exits
        worker->state = WorkerProcess::State::idle;
        idle_.push_front(std::move(worker));
        if (idle_.size() > options_.max_idle) {
            evicted = std::move(idle_.back());
            idle_.pop_back();
        }
    }
}

void WorkerPool::sweep() {
    std::vector<std::shared_ptr<WorkerProcess>> gone;
    std::vector<std::shared_ptr<Validator>> unused;
    {
        std::lock_guard lock(mu_);
        std::erase_if(validators_, [&](auto &entry) {
            if (!entry.second->alive.expired()) return false;
            unused.push_back(std::move(entry.second));
            return true;
        });
        for (auto it = idle_.begin(); it != idle_.end();) {
            if ((*it)->generation_gone()) {
                gone.push_back(std::move(*it));
                it = idle_.erase(it);
            } else {
                ++it;
            }
        }
    }
    // Released here, outside the lock: each is asked to exit.
}

model::TaskOutcome WorkerPool::invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                                      JobContext &job, bool check_params) {
    std::shared_ptr<WorkerProcess> worker = take_idle(target);
    if (!worker) {
        Result<std::shared_ptr<WorkerProcess>> started = start(target);
        if (!started) {
            model::TaskOutcome out;
            out.has_error = true;
            out.error_type = "taskhost::WorkerUnavailable";
            out.error_message = started.error().message;
            return out;
        }
        worker = std::move(*started);
    }
    {
        std::lock_guard lock(mu_);
        worker->state = WorkerProcess::State::busy;
        worker->current_job = job_id;
        busy_[job_id] = worker;
    }
    bool died = false;
    model::TaskOutcome out = worker->run(host_api_, target, job_id, params_json, check_params, job, died);
    {
        std::lock_guard lock(mu_);
        busy_.erase(job_id);
        worker->current_job.clear();
        if (died) {
            if (!worker->kill_reason().empty()) ++stats_.killed_by_reason["given_up"];
            else if (worker->end_signal() == SIGXCPU) ++stats_.killed_by_reason["cpu_limit"];
            else ++stats_.crashed_by_plugin[std::string(target.plugin)];
        }
    }
    if (!died) {
        {
            std::lock_guard lock(mu_);
            crash_streak_.erase(target.generation);
        }
        give_back(std::move(worker));
        // A job that ran out of memory names the limit it ran into.
        if (out.has_error && options_.limits.memory_bytes > 0 && out.error_type.find("bad_alloc") != std::string::npos)
            out.error_message += " (the worker process's memory limit, --worker-memory, is " +
                                 mib(options_.limits.memory_bytes) + ")";
        return out;
    }
    if (worker->kill_reason().empty()) {
        spdlog::error("job {}: {}", job_id, out.error_message);
        if (on_fault_) on_fault_(target, out.error_message);
    }
    replace_after_crash(target);
    if (worker->end_signal() == SIGXCPU && options_.limits.cpu_seconds > 0)
        out.error_message += " (its CPU limit, --worker-cpu-seconds " + std::to_string(options_.limits.cpu_seconds) +
                             " s, was reached)";
    return out;
}

Result<void> WorkerPool::validate(const Target &target, std::string_view params_json) {
    std::shared_ptr<Validator> validator;
    {
        std::lock_guard lock(mu_);
        if (stopping_) return fail(ErrorKind::unavailable, "the host is shutting down");
        auto &slot = validators_[target.generation];
        if (!slot) {
            slot = std::make_shared<Validator>();
            slot->alive = target.generation_alive;
        }
        validator = slot;
    }
    std::lock_guard check(validator->mu);
    if (!validator->worker) {
        Result<std::shared_ptr<WorkerProcess>> started = start(target);
        if (!started) return std::move(started).error();
        (*started)->state = WorkerProcess::State::idle;
        std::lock_guard lock(mu_);  // describe_json() reads it under mu_ alone
        validator->worker = std::move(*started);
    }
    bool died = false;
    Result<void> checked = validator->worker->validate(target, params_json, died);
    if (died) {
        {
            std::lock_guard lock(mu_);
            ++stats_.crashed_by_plugin[std::string(target.plugin)];
            validator->worker.reset();  // the next check starts another
        }
        spdlog::error("{}", checked.error().message);
        if (on_fault_) on_fault_(target, checked.error().message);
    }
    return checked;
}

bool WorkerPool::kill_job(const std::string &job_id, const std::string &why) {
    std::lock_guard lock(mu_);
    auto it = busy_.find(job_id);
    if (it == busy_.end()) return false;
    it->second->kill(why, true);
    return true;
}

Executor::WorkerStats WorkerPool::stats() const {
    std::lock_guard lock(mu_);
    Executor::WorkerStats s = stats_;
    s.busy = busy_.size();
    s.alive = idle_.size() + busy_.size() + starting_.size();
    for (const auto &[generation, v] : validators_) s.alive += v->worker ? 1 : 0;
    return s;
}

std::string WorkerPool::describe_json() const {
    nlohmann::json list = nlohmann::json::array();
    std::lock_guard lock(mu_);
    auto add = [&](const WorkerProcess &w, const char *state, const std::string &job) {
        list.push_back({{"pid", w.pid()},
                        {"plugin", w.plugin()},
                        {"version", w.version()},
                        {"file", w.file()},
                        {"generation", w.generation()},
                        {"state", state},
                        {"job_id", job.empty() ? nlohmann::json(nullptr) : nlohmann::json(job)},
                        {"jobs_served", w.jobs_served()},
                        {"rss_bytes", rss_of(w.pid())},
                        {"started_at", iso8601_utc(w.started_at_us())}});
    };
    for (const auto &w : starting_) add(*w, "starting", "");
    for (const auto &[job, w] : busy_) add(*w, "busy", job);
    for (const auto &w : idle_) add(*w, "idle", "");
    for (const auto &[generation, v] : validators_) {
        // Read without its lock (a check may be under way): the pointer is
        // only changed while mu_ is held too.
        if (v->worker) add(*v->worker, "validating", "");
    }
    return list.dump();
}

}  // namespace taskhost::exec
