#include "store/sqlite/checkpointer.hpp"

#include <algorithm>

#include "util/thread_name.hpp"

namespace taskhost::store::sqlite {

Checkpointer::Checkpointer(Connection &writer, const std::string &name, Settings settings, CommitHealth &health,
                           const Reporter &report)
    : writer_(writer.handle()),
      checkpoint_pages_(static_cast<int>(std::max<size_t>(1, settings.checkpoint_pages))),
      wal_cap_pages_(static_cast<int>(settings.wal_cap_pages)),
      health_(health),
      report_(report) {
    if (settings.background) {
        conn_ = std::make_unique<Connection>(name, false, Connection::Role::checkpointer);
        thread_ = std::thread([this] { run(); });
    }
    sqlite3_wal_hook(writer_, &Checkpointer::on_wal_commit, this);
}

Checkpointer::~Checkpointer() {
    sqlite3_wal_hook(writer_, nullptr, nullptr);  // the hook must not outlive this
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

// sqlite3_wal_hook: after each commit of the writer connection.
int Checkpointer::on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames) {
    auto &c = *static_cast<Checkpointer *>(arg);
    ++c.wal_commits_;  // SQLite calls this only for a commit that appended frames
    if (frames < c.wal_frames_seen_) c.wal_backfilled_.store(0);  // the WAL restarted from its start
    c.wal_frames_seen_ = frames;
    const int left = frames - c.wal_backfilled_.load();  // frames no checkpoint has copied yet
    if (frames >= c.wal_cap_pages_) {
        // The cap holds even when the background checkpoint is slow: the
        // writer waits for it rather than appending past the cap. No
        // commit can come in between: this checkpoint catches up, and the
        // next commit restarts the WAL. Usually the background one has
        // just copied all but the last few frames.
        if (c.running_.load()) {
            std::unique_lock lock(c.mu_);
            c.idle_cv_.wait(lock, [&] { return !c.running_.load(); });
        }
        int log = 0, copied = 0;
        if (!c.health_.latched() &&
            c.checkpointed(db, sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied))) {
            c.wal_backfilled_.store(copied);
            c.writer_checkpoints_.fetch_add(1, std::memory_order_relaxed);
        }
    } else if (c.thread_.joinable() && left >= c.checkpoint_pages_) {
        std::lock_guard lock(c.mu_);
        if (!c.wanted_) {
            c.wanted_ = true;
            c.cv_.notify_one();
        }
    }
    return SQLITE_OK;
}

bool Checkpointer::checkpointed(sqlite3 *db, int rc) {
    if (rc == SQLITE_OK) return true;
    if (rc == SQLITE_BUSY) return false;  // a reader or the writer holds the WAL: the next one catches up
    const std::string what = std::string("WAL checkpoint failed: ") + sqlite3_errmsg(db);
    // Retrying could not tell whether the pages the failed fsync covered
    // reached the disk. The WAL still holds them (a checkpoint that fails
    // does not move its backfill mark), but the file is trusted no further.
    if (is_fsync_failure(sqlite3_extended_errcode(db))) health_.latch_fsync_failure(what);
    report_(what);
    return false;
}

void Checkpointer::run() {
    name_this_thread("th-checkpoint");
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return wanted_ || stop_; });
        if (stop_) return;
        wanted_ = false;
        running_.store(true);
        lock.unlock();
        int log = 0, copied = 0;
        sqlite3 *const db = conn_->handle();
        if (!health_.latched() &&
            checkpointed(db, sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied))) {
            wal_backfilled_.store(copied);
            checkpoints_.fetch_add(1, std::memory_order_relaxed);
        }
        lock.lock();
        running_.store(false);
        idle_cv_.notify_all();
    }
}

}  // namespace taskhost::store::sqlite
