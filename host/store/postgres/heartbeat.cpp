#include "store/postgres/heartbeat.hpp"

#include <chrono>
#include <utility>

#include "model/job.hpp"
#include "store/postgres/schema.hpp"
#include "util/clock.hpp"
#include "util/thread_name.hpp"

namespace taskhost::store::postgres {

namespace {

// The tasks ($5, the largest part) only when they changed: NULL keeps them.
constexpr char kAlive[] =
    "INSERT INTO hosts (id, address, version, plugins, tasks, started_at, heartbeat_at) "
    "VALUES ($1, $2, $3, $4, coalesce($5::jsonb, '[]'), $6, " TASKHOST_PG_NOW_US
    ") ON CONFLICT (id) DO UPDATE SET "
    "address = excluded.address, version = excluded.version, plugins = excluded.plugins, "
    "tasks = CASE WHEN $5 IS NULL THEN hosts.tasks ELSE excluded.tasks END, heartbeat_at = excluded.heartbeat_at";
// Returns those of its jobs another host asked it to cancel.
constexpr char kRenew[] =
    "WITH r AS (UPDATE jobs SET lease_until = " TASKHOST_PG_NOW_US " + $2 WHERE run_by = $1 AND status = 'running' "
    "RETURNING id, cancel_requested_at) SELECT id FROM r WHERE cancel_requested_at IS NOT NULL";
// Each job failed is told to the fleet (Listener), for those waiting on it.
// A retry-safe one with starts left ($1), and no cancel asked of it, is
// queued again for any host instead, and the fleet told there is work.
#define TASKHOST_AGAIN \
    "CASE WHEN retry_safe AND attempts < " TASKHOST_PG_MAX_STARTS("$1") " AND cancel_requested_at IS NULL "
constexpr char kReap[] =
    "WITH lost AS (UPDATE jobs SET status = " TASKHOST_AGAIN "THEN 'pending' ELSE 'failed' END, "
    "finished_at = " TASKHOST_AGAIN "THEN NULL ELSE " TASKHOST_PG_NOW_US " END, "
    "error = " TASKHOST_AGAIN "THEN NULL ELSE 'host ' || run_by || ' was lost while running this job' END, "
    "started_at = " TASKHOST_AGAIN "THEN NULL ELSE started_at END, "
    "run_by = " TASKHOST_AGAIN "THEN NULL ELSE run_by END, "
    "queued_by = " TASKHOST_AGAIN "THEN NULL ELSE queued_by END, "
    "progress = " TASKHOST_AGAIN "THEN NULL ELSE progress END, "
    "progress_message = " TASKHOST_AGAIN "THEN '' ELSE progress_message END, "
    "attempt_log = " TASKHOST_AGAIN "THEN " TASKHOST_PG_LOG_LOST(TASKHOST_PG_NOW_US,
                                                              "'host ' || coalesce(run_by, '?') || ' was lost while running this job'")
    " ELSE attempt_log END, lease_until = NULL "
    "WHERE status = 'running' AND lease_until < " TASKHOST_PG_NOW_US " RETURNING id, status) "
    "SELECT pg_notify('taskhost', p) FROM (SELECT 'j:' || id AS p FROM lost "
    "UNION ALL SELECT 'w:' FROM lost WHERE status = 'pending') AS notices";
#undef TASKHOST_AGAIN

}  // namespace

Heartbeat::Heartbeat(std::string url, bool durable_commits, HostLease lease, const Reporter &report,
                     std::function<void()> after_beat, std::function<void(const std::string &)> cancel_asked)
    : url_(std::move(url)),
      durable_commits_(durable_commits),
      lease_(std::move(lease)),
      report_(report),
      started_at_(now_us()),
      after_beat_(std::move(after_beat)),
      cancel_asked_(std::move(cancel_asked)) {
    beat();
    thread_ = std::thread([this] { run(); });
}

Heartbeat::~Heartbeat() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

void Heartbeat::describe(std::string address, std::string version, std::string plugins_json, std::string tasks_json) {
    {
        std::lock_guard lock(mu_);
        address_ = std::move(address);
        version_ = std::move(version);
        plugins_json_ = std::move(plugins_json);
        tasks_json_ = std::move(tasks_json);
        ++described_;
        beat_now_ = true;  // the fleet learns of a new address or plugins at once
    }
    cv_.notify_one();
}

void Heartbeat::beat() {
    std::vector<std::string> cancels;
    Params alive;
    uint64_t describing = 0;
    {
        std::lock_guard lock(mu_);
        describing = described_;
        alive.add(std::string_view(lease_.host_id)).add(std::string_view(address_)).add(std::string_view(version_));
        alive.add(std::string_view(plugins_json_));
        if (described_ != tasks_sent_) alive.add(std::string_view(tasks_json_));
        else alive.add_null();
        alive.add(started_at_);
    }
    try {
        if (!conn_ || conn_->broken()) conn_ = std::make_unique<Connection>(url_, durable_commits_);
        conn_->run(kAlive, alive);
        {
            std::lock_guard lock(mu_);
            tasks_sent_ = describing;
        }
        Params renew;
        renew.add(std::string_view(lease_.host_id)).add(lease_.lease_us);
        Rows cancel = conn_->run(kRenew, renew);
        for (int i = 0; i < cancel.size(); ++i) cancels.push_back(cancel.text(i, 0));
        const auto now = std::chrono::steady_clock::now();
        if (!beating_since_) beating_since_ = now;
        if (now - *beating_since_ >= std::chrono::microseconds(lease_.lease_us)) {
            Params reap;
            reap.add(int64_t{model::kMaxHostLossAttempts});
            reaped_.fetch_add(static_cast<uint64_t>(conn_->run(kReap, reap).size()));
        }
        beats_.fetch_add(1);
        if (failing_) report_("heartbeat: the database answers again");
        failing_ = false;
    } catch (const std::exception &e) {
        beating_since_.reset();
        // The next beat tries again; the leases of this host's jobs run out
        // if none gets through in time, and other hosts fail them.
        if (!failing_) report_(std::string("heartbeat failed: ") + e.what());
        failing_ = true;
        conn_.reset();
        return;
    }
    if (cancel_asked_)
        for (const auto &id : cancels) cancel_asked_(id);
    if (after_beat_) after_beat_();
}

void Heartbeat::run() {
    name_this_thread("th-heartbeat");
    const auto every = std::chrono::microseconds(lease_.lease_us / 3);
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait_for(lock, every, [&] { return stop_ || beat_now_; });
        if (stop_) return;
        beat_now_ = false;
        lock.unlock();
        beat();
        lock.lock();
    }
}

}  // namespace taskhost::store::postgres
