// Scans the plugins folder, loads new or changed files as new generations
// from sealed in-memory copies, validates them, and publishes one registry snapshot.
// Loads are serialized; readers never block on a reload: they read a view
// published at the end of each one.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "plugins/faults.hpp"
#include "plugins/generation.hpp"
#include "plugins/probe.hpp"
#include "registry/registry.hpp"
#include "util/result.hpp"

namespace taskhost::plugins {

struct ReloadReport {
    std::vector<std::string> added, replaced, removed, unchanged;
    std::vector<std::string> deferred;  // changing while read: examined again at the next reload
    struct Refusal {
        std::string file, reason;
        bool kept_previous = false;  // an older good generation still serves
    };
    std::vector<Refusal> refused;
    uint64_t snapshot_version = 0;
    double duration_ms = 0;
    std::string to_json() const;
};

// Generations whose last holder let go, waiting to be unloaded. dlclose()
// runs on the loader's thread, serialized with dlopen() (concurrent
// dlopen/dlclose is unsafe on some libcs, and the plugin's shutdown() and
// static destructors then never run on a worker thread).
struct UnloadQueue {
    std::mutex mu;
    std::vector<Generation *> waiting;
    bool closed = false;  // the manager is gone: unload at once
    void push(Generation *g);
    void drain();
};

class PluginManager {
public:
    struct Options {
        std::filesystem::path dir;
        bool allow_insecure = false;  // load files and a folder others could have written
        FaultBook *faults = nullptr;  // none: no quarantine
        // Opens a new version in a child process before the host does
        // (plugins/probe.hpp); empty: loaded in the host at once.
        std::function<ProbeResult(const UniqueFd &image, const std::string &file)> probe{};
        // Whether the plugin named `plugin_name` (as its TASKHOST_PLUGIN
        // declares it) runs in the host's own threads. Empty: every plugin
        // does. One it says no to is never mapped in the host: it becomes a
        // remote generation (in_process false) described by the probe
        // child's report, its init() left to the worker processes. Its name
        // is only known from that report, so with this set and no probe
        // every plugin is refused.
        std::function<bool(const std::string &plugin_name)> in_process{};
    };
    // Runs a plugin's init() with the host's services (the executor does,
    // as it runs all plugin code); the reason when it refuses.
    // `hash` names the plugin version (its file's SHA-256).
    using InitPlugin =
        std::function<Result<void>(const th_plugin_desc &desc, const std::string &file, const std::string &hash)>;

    PluginManager(Options options, registry::Registry &registry, InitPlugin init);
    ~PluginManager();

    ReloadReport reload();
    // Charges a fault to the plugin version `plugin.hash` (FaultBook::record).
    // A version it quarantines is withdrawn at the next reload and not
    // loaded again until its file changes. Its record after.
    model::PluginFaults charge(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                               const std::string &reason);
    // For GET /metrics.
    struct Counts {
        size_t active = 0;       // files loaded
        size_t refused = 0;      // files whose last examined content was refused
        size_t quarantined = 0;  // files whose content is quarantined
        uint64_t reloads = 0;
    };
    Counts counts() const;
    // GET /api/v1/plugins: one entry per file, plus retired generations.
    std::string describe_json() const;
    // What /health reports: each file refused or quarantined, and why.
    std::vector<std::string> problems() const;
    // counts(), describe_json() and problems() read a view published at the
    // end of each reload: they never wait for one, however long it takes.

    // The reload in progress, if any, and the last one that finished: what
    // /health and /metrics say of a reload stuck in plugin code.
    struct ReloadProgress {
        struct Running {
            int64_t started_at_us = 0;
            std::chrono::steady_clock::time_point started;
            std::string loading;  // the file being loaded and initialized; empty between loads
            std::chrono::steady_clock::time_point loading_since;
            std::string slowest_file;  // of the files loaded so far, the one that took longest
            double slowest_s = 0;
        };
        struct Finished {
            int64_t finished_at_us = 0;
            double seconds = 0;
            std::string slowest_file;  // empty: no file was loaded
            double slowest_s = 0;
        };
        std::optional<Running> running;
        std::optional<Finished> last;
    };
    ReloadProgress reload_progress() const;

private:
    struct FileState {
        std::string file;
        std::string fingerprint;  // size/mtime/inode of what was examined last
        std::string hash;         // content hash examined last
        std::shared_ptr<Generation> active;
        std::string error;  // why the last examined content was refused
        std::string refused_hash;
        bool conflict = false;  // refused for a task-name clash: retried next time
        int64_t error_at_us = 0;
        std::optional<model::PluginFaults> quarantine;  // its content is quarantined: not loaded
    };

    using FolderListing = std::map<std::string, std::filesystem::path>;  // by file name
    // A new generation of a file, loaded but not serving yet.
    struct Candidate {
        std::string file;
        std::shared_ptr<Generation> generation;
    };
    using ClashRefusals = std::map<std::string, std::string>;  // file -> reason

    // The steps of reload(), in order; they run under mu_.
    bool folder_is_trusted(ReloadReport &report);
    FolderListing scan_folder() const;
    void withdraw_removed(const FolderListing &on_disk, ReloadReport &report);
    // Reads which versions are quarantined and withdraws the ones serving.
    void withdraw_quarantined();
    std::vector<Candidate> load_changed(const FolderListing &on_disk, ReloadReport &report);
    ClashRefusals resolve_name_clashes(const std::vector<Candidate> &candidates) const;
    void commit_candidates(std::vector<Candidate> &candidates, const ClashRefusals &clashes, ReloadReport &report);
    bool snapshot_is_stale(const ReloadReport &report) const;
    void publish_snapshot();
    void forget_released();
    // Publishes what counts(), describe_json() and problems() read (mu_ held).
    void publish_view();
    // ReloadProgress bookkeeping.
    void reload_started();
    void reload_finished();
    void loading(const std::string &file);
    void loaded();

    // Parts of those steps.
    std::optional<std::string> read_if_changed(FileState &st, const std::filesystem::path &path, ReloadReport &report);
    // A new generation of `file` from its bytes, initialized; or why it is refused.
    Result<std::shared_ptr<Generation>> load(const std::string &file, const std::string &bytes,
                                             const std::string &hash);
    void charge_load_failure(const std::string &file, const std::string &hash, const std::string &reason);
    std::optional<ClashRefusals::value_type> first_name_clash(const std::vector<Candidate> &candidates,
                                                              const ClashRefusals &refused) const;
    void activate(FileState &st, std::shared_ptr<Generation> generation, ReloadReport &report);
    void refuse(FileState &st, const std::string &reason, bool conflict, ReloadReport &report);

    Options options_;
    registry::Registry &registry_;
    InitPlugin init_;
    // Quarantined versions by hash, read at each reload (mu_).
    std::map<std::string, model::PluginFaults> quarantined_;
    bool quarantine_changed_ = false;  // a file entered or left quarantine in this reload (mu_)
    mutable std::mutex mu_;            // serializes reloads and guards the state below
    std::map<std::string, FileState> files_;
    std::string folder_error_;  // why the folder was not read at the last reload
    std::vector<std::weak_ptr<Generation>> retired_;
    std::shared_ptr<UnloadQueue> unloads_ = std::make_shared<UnloadQueue>();
    uint64_t next_generation_ = 1;
    uint64_t reloads_ = 0;
    uint64_t snapshot_version_ = 0;

    struct View;
    std::shared_ptr<const View> view() const;
    mutable std::mutex view_mu_;  // guards view_ only: held for a pointer copy
    std::shared_ptr<const View> view_;
    mutable std::mutex progress_mu_;  // guards progress_ only, never held while loading
    ReloadProgress progress_;
};

}  // namespace taskhost::plugins
