// WAL checkpoints of a file database. At SQLite's default the writer
// checkpoints inline every 1,000 pages: under load a commit waited for a
// checkpoint's copying and two fsyncs every ~20 ms (one-request p99 3.3 ms).
// Here a connection of its own does it, asked by the writer's WAL hook; the
// writer checkpoints itself only once the WAL reaches its cap, waiting for
// a background checkpoint in progress so that the cap is a bound.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/sqlite/connection.hpp"
#include "store/commit_health.hpp"
#include "store/report.hpp"

namespace taskhost::store::sqlite {

class Checkpointer {
public:
    struct Settings {
        size_t checkpoint_pages;  // background checkpoint after this many new pages
        size_t wal_cap_pages;     // from this size the writer checkpoints itself
        bool background;          // false: the writer alone, at wal_cap_pages
    };
    // Hooks the writer's commits (replacing SQLite's autocheckpoint) and, if
    // settings.background, starts the background connection. A checkpoint
    // whose fsync fails latches `health`, and none is tried after it.
    Checkpointer(Connection &writer, const std::string &name, Settings settings, CommitHealth &health,
                 const Reporter &report);
    ~Checkpointer();
    Checkpointer(const Checkpointer &) = delete;
    Checkpointer &operator=(const Checkpointer &) = delete;

    // Commits that appended WAL frames (writer thread only).
    uint64_t wal_commits() const { return wal_commits_; }
    uint64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }
    uint64_t writer_checkpoints() const { return writer_checkpoints_.load(std::memory_order_relaxed); }

private:
    static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames);
    void run();  // the background thread
    // A checkpoint's result code on `db`: true when it copied (SQLITE_OK).
    bool checkpointed(sqlite3 *db, int rc);

    sqlite3 *const writer_;
    const int checkpoint_pages_;
    const int wal_cap_pages_;
    CommitHealth &health_;
    const Reporter &report_;

    uint64_t wal_commits_ = 0;  // writer thread only
    int wal_frames_seen_ = 0;   // the WAL's size at the last commit (writer thread only)
    // Frames the last checkpoint copied; 0 once the WAL restarted.
    std::atomic<int> wal_backfilled_{0};
    // The background connection is checkpointing (written under mu_).
    std::atomic<bool> running_{false};
    std::atomic<uint64_t> checkpoints_{0}, writer_checkpoints_{0};

    std::unique_ptr<Connection> conn_;  // the background connection
    std::mutex mu_;
    std::condition_variable cv_;       // wakes the background thread
    std::condition_variable idle_cv_;  // running_ became false
    bool wanted_ = false;  // guarded by mu_
    bool stop_ = false;    // guarded by mu_
    std::thread thread_;   // last: starts once the rest is ready
};

}  // namespace taskhost::store::sqlite
