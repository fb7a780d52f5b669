#include "metrics/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>

namespace taskhost::metrics {

namespace {

void append_number(std::string &out, double value) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, ec == std::errc() ? end : buf);
}

std::string with_label(std::string_view labels, std::string_view extra) {
    std::string out(labels);
    if (!out.empty() && !extra.empty()) out += ',';
    out += extra;
    return out;
}

// When this process started (for process_start_time_seconds): taken when
// the binary's statics initialize, close enough to exec for a scraper.
const double kStartTime = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

}  // namespace

void Histogram::observe_us(int64_t us) {
    if (us < 0) us = 0;
    const double seconds = static_cast<double>(us) / 1e6;
    size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<uint64_t>(us), std::memory_order_relaxed);
}

void Histogram::render(std::string &out, std::string_view name, std::string_view labels) const {
    // The count is the buckets' total, so the two always agree even while
    // jobs end during a scrape (the sum may be one observation off).
    uint64_t cumulative = 0;
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t i = 0; i <= kBounds.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        std::string le = "le=\"";
        if (i < kBounds.size()) {
            char buf[32];
            auto [end, ec] = std::to_chars(buf, buf + sizeof buf, kBounds[i], std::chars_format::fixed);
            le.append(buf, ec == std::errc() ? end : buf);
        } else {
            le += "+Inf";
        }
        le += '"';
        sample(out, bucket, with_label(labels, le), static_cast<double>(cumulative));
    }
    sample(out, std::string(name) + "_sum", labels, static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
    sample(out, std::string(name) + "_count", labels, static_cast<double>(cumulative));
}

TaskCounters &Metrics::task(std::string_view name) {
    {
        std::shared_lock lock(mu_);
        if (auto it = tasks_.find(name); it != tasks_.end()) return *it->second;
    }
    std::unique_lock lock(mu_);
    auto &slot = tasks_[std::string(name)];
    if (!slot) slot = std::make_unique<TaskCounters>();
    return *slot;
}

void Metrics::count_response(int status) {
    if (status >= 100 && status < static_cast<int>(responses_.size()))
        responses_[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::render(std::string &out) const {
    std::shared_lock lock(mu_);
    auto each_task = [&](auto &&emit) {
        for (const auto &[name, counters] : tasks_) emit("task=\"" + name + "\"", *counters);
    };
    family(out, "taskhost_jobs_submitted_total", "counter", "Jobs accepted by $execute, by task.");
    each_task([&](const std::string &l, const TaskCounters &c) {
        sample(out, "taskhost_jobs_submitted_total", l, static_cast<double>(c.submitted.load()));
    });
    family(out, "taskhost_jobs_rejected_total", "counter",
           "$execute calls refused, by task and reason (queue_full: the 503 of a full queue; invalid_params: "
           "the 400 of params the task's check refused).");
    each_task([&](const std::string &l, const TaskCounters &c) {
        sample(out, "taskhost_jobs_rejected_total", l + ",reason=\"queue_full\"",
               static_cast<double>(c.rejected_queue_full.load()));
        sample(out, "taskhost_jobs_rejected_total", l + ",reason=\"invalid_params\"",
               static_cast<double>(c.rejected_invalid.load()));
    });
    family(out, "taskhost_job_retries_total", "counter",
           "Failed attempts that were scheduled to run again (the task's retry policy), by task.");
    each_task([&](const std::string &l, const TaskCounters &c) {
        sample(out, "taskhost_job_retries_total", l, static_cast<double>(c.retried.load()));
    });
    family(out, "taskhost_jobs_finished_total", "counter",
           "Jobs that ended, by task and final status (deleted: deleted while pending or running; failed also "
           "counts a job whose store write failed).");
    each_task([&](const std::string &l, const TaskCounters &c) {
        static constexpr std::array<std::string_view, 4> names = {"completed", "failed", "canceled", "deleted"};
        for (size_t i = 0; i < names.size(); ++i)
            sample(out, "taskhost_jobs_finished_total", l + ",status=\"" + std::string(names[i]) + "\"",
                   static_cast<double>(c.finished[i].load()));
    });
    family(out, "taskhost_job_queue_wait_seconds", "histogram", "Time from submission to start, by task.");
    each_task([&](const std::string &l, const TaskCounters &c) {
        c.queue_wait.render(out, "taskhost_job_queue_wait_seconds", l);
    });
    family(out, "taskhost_job_run_seconds", "histogram", "Time from start to end of the jobs that ran, by task.");
    each_task([&](const std::string &l, const TaskCounters &c) { c.run.render(out, "taskhost_job_run_seconds", l); });

    family(out, "taskhost_http_responses_total", "counter", "HTTP responses sent, by status code.");
    for (size_t code = 100; code < responses_.size(); ++code) {
        const uint64_t n = responses_[code].load(std::memory_order_relaxed);
        if (n > 0)
            sample(out, "taskhost_http_responses_total", "code=\"" + std::to_string(code) + "\"",
                   static_cast<double>(n));
    }
    single(out, "taskhost_previous_run_crashed", "gauge",
           "1 if this run started after the previous one crashed (its crash record was found at start-up; the "
           "plugin code it names was charged with the crash), else 0.",
           previous_run_crashed_.load(std::memory_order_relaxed) ? 1 : 0);
}

void family(std::string &out, std::string_view name, std::string_view type, std::string_view help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

std::string label_value(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void sample(std::string &out, std::string_view name, std::string_view labels, double value) {
    out += name;
    if (!labels.empty()) {
        out += '{';
        out += labels;
        out += '}';
    }
    out += ' ';
    append_number(out, value);
    out += '\n';
}

void single(std::string &out, std::string_view name, std::string_view type, std::string_view help, double value) {
    family(out, name, type, help);
    sample(out, name, "", value);
}

void render_process(std::string &out) {
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    double cpu = 0, vsize = 0, rss = 0;
    {
        // /proc/self/stat: fields after the parenthesized command name.
        std::ifstream in("/proc/self/stat");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const size_t close = text.rfind(')');
        if (close != std::string::npos) {
            std::istringstream fields(text.substr(close + 2));
            std::string f;
            for (int i = 3; fields >> f; ++i) {                       // field 3 is the state
                if (i == 14 || i == 15) cpu += std::stod(f) / ticks;  // utime, stime
                else if (i == 23) vsize = std::stod(f);
                else if (i == 24) rss = std::stod(f) * page;
            }
        }
    }
    size_t fds = 0;
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (dirent *e = ::readdir(d))
            if (e->d_name[0] != '.') ++fds;
        ::closedir(d);
        if (fds > 0) --fds;  // the one opendir itself holds
    }
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);

    single(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", cpu);
    single(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
    single(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
    single(out, "process_open_fds", "gauge", "Open file descriptors.", static_cast<double>(fds));
    single(out, "process_max_fds", "gauge", "Limit of open file descriptors.", static_cast<double>(limit.rlim_cur));
    single(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.",
           kStartTime);
}

}  // namespace taskhost::metrics
