#include "plugins/manager.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <boost/dll/shared_library.hpp>
#include <nlohmann/json.hpp>

#include "model/task_info.hpp"
#include "plugins/descriptor.hpp"
#include "plugins/plugin_file.hpp"
#include "util/clock.hpp"
#include "util/sha256.hpp"

namespace taskhost::plugins {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The plugin file's own fault: refused as invalid.
Error refusal(std::string reason) { return fail(ErrorKind::invalid, std::move(reason)); }

// Offers every task of `generation` in `snapshot`; each task keeps it loaded.
void add_tasks(registry::Snapshot &snapshot, const std::shared_ptr<Generation> &generation) {
    const th_plugin_desc *d = generation->desc;
    for (uint32_t i = 0; i < d->task_count; ++i) {
        auto task = std::make_shared<registry::Task>();
        const th_task_desc &t = d->tasks[i];
        task->name = t.name;
        for (uint32_t k = 0; k < t.tag_count; ++k) task->tags.emplace_back(t.tags[k] ? t.tags[k] : "");
        task->desc = &t;
        task->has_validate = generation->descriptor->has_validate(i);  // a remote one has no pointer
        task->default_priority = t.priority;                           // clamped when the descriptor was read
        task->retry = model::task_retry_policy(t);
        task->params_schema = generation->descriptor->params_schema(i);
        task->plugin = generation;
        task->info_json = generation->task_info[i];
        snapshot.tasks.emplace(task->name, std::move(task));
    }
}

}  // namespace

std::string ReloadReport::to_json() const {
    json refusals = json::array();
    for (const auto &r : refused)
        refusals.push_back({{"file", r.file}, {"reason", r.reason}, {"kept_previous", r.kept_previous}});
    return json{{"added", added},
                {"replaced", replaced},
                {"removed", removed},
                {"deferred", deferred},
                {"refused", refusals},
                {"unchanged", unchanged.size()},
                {"snapshot_version", snapshot_version},
                {"duration_ms", duration_ms}}
        .dump();
}

void UnloadQueue::push(Generation *g) {
    {
        std::lock_guard lock(mu);
        if (!closed) {
            waiting.push_back(g);
            return;
        }
    }
    delete g;
}

void UnloadQueue::drain() {
    std::vector<Generation *> batch;
    {
        std::lock_guard lock(mu);
        batch.swap(waiting);
    }
    for (Generation *g : batch) delete g;
}

// What the readers see: built from the state at the end of a reload, never
// changed after. A generation is held weakly: its jobs in flight are read
// live, and a retired one drops out of the list once it is released.
struct PluginManager::View {
    struct Entry {
        json body;
        std::weak_ptr<Generation> generation;  // empty: no generation loaded
        bool retired = false;
    };
    Counts counts;
    std::vector<std::string> problems;
    std::vector<Entry> entries;
};

PluginManager::PluginManager(Options options, registry::Registry &registry, InitPlugin init)
    : options_(std::move(options)), registry_(registry), init_(std::move(init)), view_(std::make_shared<View>()) {
    if (!init_) throw std::invalid_argument("PluginManager needs a way to run plugin init()");
}

PluginManager::~PluginManager() {
    {
        std::lock_guard lock(unloads_->mu);
        unloads_->closed = true;
    }
    unloads_->drain();
}

Result<std::shared_ptr<Generation>> PluginManager::load(const std::string &file, const std::string &bytes,
                                                        const std::string &hash) {
    uint64_t number = next_generation_++;
    // Loaded from a sealed in-memory copy: nothing on disk to swap between
    // hashing and dlopen(), no file to truncate under the mapping, and a
    // path of its own for each generation (dlopen() returns the loaded
    // image for a path it has seen).
    if (Result<void> elf = check_elf_image(bytes); !elf) return std::move(elf).error();
    Result<UniqueFd> image = seal_in_memory(std::to_string(number) + "-" + file, bytes);
    if (!image) return fail(ErrorKind::internal, image.error().message);
    // The probe's account of a plugin that must not be mapped here.
    std::unique_ptr<const Descriptor> remote;
    if (options_.probe) {
        ProbeResult probed = options_.probe(*image, file);
        if (probed.failure) {
            if (probed.failure->transient) return fail(ErrorKind::unavailable, probed.failure->reason);
            if (probed.failure->wedged) charge_load_failure(file, hash, probed.failure->reason);
            return refusal(probed.failure->reason);
        }
        if (options_.in_process) {
            if (probed.descriptor_json.empty()) return refusal("the trial process reported no descriptor");
            Result<std::unique_ptr<const Descriptor>> reported = descriptor_from_json(probed.descriptor_json);
            if (!reported) return std::move(reported).error();
            if (!options_.in_process((*reported)->plugin().name)) remote = std::move(*reported);
        }
    } else if (options_.in_process) {
        // Not the file's fault: it is looked at again at every reload.
        return fail(ErrorKind::unavailable,
                    "cannot tell whether it runs in the host or in worker processes without mapping it: its "
                    "descriptor comes from the trial process, which is off");
    }

    auto unload_later = [queue = unloads_](Generation *g) { queue->push(g); };
    std::shared_ptr<Generation> generation;
    if (remote) {
        generation = std::shared_ptr<Generation>(new Generation(std::move(*image), std::move(remote)), unload_later);
    } else {
        boost::dll::shared_library library;
        try {
            library.load(boost::dll::fs::path(path_of(*image)),
                         boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
        } catch (const std::exception &e) {
            std::string why = e.what();
            return refusal("not a loadable shared library: " + why);
        }
        if (!library.has(TH_PLUGIN_ENTRY_NAME))
            return refusal(std::string("no entry symbol ") + TH_PLUGIN_ENTRY_NAME + ": not a taskhost plugin");
        auto entry = library.get<const th_plugin_desc *()>(TH_PLUGIN_ENTRY_NAME);
        Result<std::unique_ptr<const Descriptor>> descriptor = read_descriptor(entry());
        if (!descriptor) return std::move(descriptor).error();
        generation = std::shared_ptr<Generation>(
            new Generation(std::move(*image), std::move(library), std::move(*descriptor)), unload_later);
    }
    const th_plugin_desc *desc = generation->desc;
    generation->file = file;
    generation->name = desc->name;
    generation->version = desc->version ? desc->version : "";
    generation->hash = hash;
    generation->generation_number = number;
    generation->loaded_at_us = now_us();
    json names = json::array();
    for (uint32_t i = 0; i < desc->task_count; ++i) {
        generation->task_info.push_back(model::render_task_info(desc->tasks[i], generation->name, generation->version));
        names.push_back(desc->tasks[i].name);
    }
    generation->tasks_json = names.dump();
    if (!generation->in_process) return generation;  // each worker process runs its init()
    if (desc->init != nullptr) {
        if (Result<void> init = init_(*desc, file, hash); !init)
            return fail(init.error().kind, "init failed: " + init.error().message);
    }
    generation->initialized = true;
    return generation;
}

ReloadReport PluginManager::reload() {
    auto started = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    reload_started();
    struct Finish {
        PluginManager &manager;
        ~Finish() { manager.reload_finished(); }
    } finish{*this};
    ++reloads_;
    unloads_->drain();  // generations released since the last reload
    ReloadReport report;
    quarantine_changed_ = false;
    if (folder_is_trusted(report)) {
        const FolderListing on_disk = scan_folder();
        withdraw_removed(on_disk, report);
        withdraw_quarantined();
        std::vector<Candidate> candidates = load_changed(on_disk, report);
        const ClashRefusals clashes = resolve_name_clashes(candidates);
        commit_candidates(candidates, clashes, report);
    }
    if (snapshot_is_stale(report) || quarantine_changed_) publish_snapshot();
    report.snapshot_version = snapshot_version_;
    forget_released();
    publish_view();
    report.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    return report;
}

// A folder others could write to is not read at all (what serves keeps
// serving): anyone could have put a file there.
bool PluginManager::folder_is_trusted(ReloadReport &report) {
    folder_error_.clear();
    if (options_.allow_insecure) return true;
    Result<void> trusted = check_trusted_folder(options_.dir);
    if (trusted || trusted.error().kind != ErrorKind::invalid) return true;  // a missing folder is only empty
    folder_error_ = trusted.error().message;
    report.refused.push_back({options_.dir.string(), folder_error_, false});
    spdlog::error("plugins folder not read: {}", folder_error_);
    return false;
}

PluginManager::FolderListing PluginManager::scan_folder() const {
    FolderListing on_disk;
    std::error_code ec;
    for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path &p = it->path();
        if (p.extension() != ".so") continue;
        std::error_code type_ec;
        if (!fs::is_regular_file(p, type_ec)) continue;  // follows symlinks
        on_disk.emplace(p.filename().string(), p);
    }
    if (ec) spdlog::warn("cannot scan plugins folder {}: {}", options_.dir.string(), ec.message());
    return on_disk;
}

// A file gone from the folder retires its generation; its tasks leave with
// the next snapshot.
void PluginManager::withdraw_removed(const FolderListing &on_disk, ReloadReport &report) {
    for (auto it = files_.begin(); it != files_.end();) {
        if (on_disk.count(it->first) != 0) {
            ++it;
            continue;
        }
        if (it->second.active) {
            retired_.push_back(it->second.active);
            spdlog::info("plugin {} removed: its tasks are withdrawn", it->first);
        }
        report.removed.push_back(it->first);
        it = files_.erase(it);
    }
}

void PluginManager::withdraw_quarantined() {
    quarantined_.clear();
    if (!options_.faults) return;
    for (auto &faults : options_.faults->quarantined()) quarantined_.emplace(faults.hash, std::move(faults));
    for (auto &[file, st] : files_) {
        auto it = quarantined_.find(st.hash);
        if (it == quarantined_.end() || (st.quarantine && st.quarantine->hash == st.hash)) continue;
        st.quarantine = it->second;
        quarantine_changed_ = true;
        if (st.active && st.active->hash == st.hash) {
            retired_.push_back(std::exchange(st.active, nullptr));
            spdlog::error("plugin {} {} {} is quarantined ({}): its tasks are withdrawn until the file changes", file,
                          it->second.name, it->second.version, it->second.last_reason);
        }
    }
}

model::PluginFaults PluginManager::charge(const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                          const std::string &reason) {
    if (!options_.faults) return plugin;
    model::PluginFaults after = options_.faults->record(plugin, kind, reason);
    if (after.quarantined_at != 0 && after.quarantined_at == after.last_at)
        spdlog::error("plugin {} {} ({}, {}) quarantined after {} crash(es), {} failed load(s), {} hang(s): {}",
                      after.name, after.version, after.file, after.hash, after.crashes, after.load_failures,
                      after.hangs, reason);
    return after;
}

// A version whose probe crashed or hung: charged, and quarantined from
// this reload on if that was its last chance.
void PluginManager::charge_load_failure(const std::string &file, const std::string &hash, const std::string &reason) {
    model::PluginFaults plugin;
    plugin.hash = hash;
    plugin.file = file;
    model::PluginFaults after = charge(plugin, model::PluginFaultKind::load_failure, reason);
    if (after.quarantined_at != 0) quarantined_[hash] = std::move(after);
}

std::vector<PluginManager::Candidate> PluginManager::load_changed(const FolderListing &on_disk, ReloadReport &report) {
    std::vector<Candidate> candidates;
    for (const auto &[file, path] : on_disk) {
        FileState &st = files_[file];
        st.file = file;
        std::optional<std::string> bytes = read_if_changed(st, path, report);
        if (!bytes) continue;
        loading(file);
        Result<std::shared_ptr<Generation>> generation = load(file, *bytes, st.hash);
        loaded();
        if (!generation) {
            refuse(st, generation.error().message, false, report);
            if (generation.error().kind != ErrorKind::invalid) {
                // The host's trouble, not the file's: examined afresh next time.
                st.fingerprint.clear();
                st.hash.clear();
            }
            if (auto q = quarantined_.find(st.hash); q != quarantined_.end()) {
                st.quarantine = q->second;
                quarantine_changed_ = true;
            }
            continue;
        }
        candidates.push_back({file, std::move(*generation)});
    }
    return candidates;
}

// The file's bytes, its hash recorded in `st`, unless it holds what was
// examined last (reported unchanged) or cannot be read (refused). A file
// refused for a name clash is read again: the clash may be gone.
std::optional<std::string> PluginManager::read_if_changed(FileState &st, const fs::path &path, ReloadReport &report) {
    std::string fp = fingerprint_of(path);
    if (!fp.empty() && fp == st.fingerprint && !st.conflict) {
        report.unchanged.push_back(st.file);
        return std::nullopt;
    }
    Result<FileBytes> read = read_plugin_file(path, options_.allow_insecure);
    if (!read && read.error().kind == ErrorKind::unavailable && !fp.empty()) {
        // Most likely still being copied in: looked at again next time.
        st.fingerprint.clear();
        report.deferred.push_back(st.file);
        spdlog::warn("plugin {} not examined: {}; it is retried at the next reload", st.file, read.error().message);
        return std::nullopt;
    }
    if (!read) {
        st.fingerprint.clear();
        refuse(st, read.error().message, false, report);
        return std::nullopt;
    }
    st.fingerprint = read->fingerprint;
    std::string hash = to_hex(sha256(read->bytes));
    if (hash == st.hash && !st.conflict) {
        report.unchanged.push_back(st.file);
        return std::nullopt;
    }
    st.hash = std::move(hash);
    if (auto it = quarantined_.find(st.hash); it != quarantined_.end()) {
        // Not even opened: what it did to the host last time stands.
        if (!st.quarantine || st.quarantine->hash != st.hash) {
            spdlog::error("plugin {} not loaded: this version ({} {}) is quarantined: {}", st.file, it->second.name,
                          it->second.version, it->second.last_reason);
            quarantine_changed_ = true;
        }
        st.quarantine = it->second;
        return std::nullopt;
    }
    if (st.quarantine) {
        st.quarantine.reset();  // new content: it gets its chance
        quarantine_changed_ = true;
    }
    return std::move(read->bytes);
}

// Task names are unique across plugins. Plugins already serving keep
// their names; candidates claim theirs in file order. Refusing one may
// hand names back to its previous generation, so repeat until stable.
PluginManager::ClashRefusals PluginManager::resolve_name_clashes(const std::vector<Candidate> &candidates) const {
    ClashRefusals refused;
    while (auto clash = first_name_clash(candidates, refused)) refused.insert(std::move(*clash));
    return refused;
}

// One pass of the rule above, with the candidates in `refused` out of play:
// the first candidate to meet a taken name, and why.
std::optional<PluginManager::ClashRefusals::value_type> PluginManager::first_name_clash(
    const std::vector<Candidate> &candidates, const ClashRefusals &refused) const {
    std::map<std::string, std::string> owner;  // task name -> file
    auto claim_all = [&](const std::string &file, const Generation &g) {
        for (uint32_t i = 0; i < g.desc->task_count; ++i) owner.emplace(g.desc->tasks[i].name, file);
    };
    std::set<std::string> in_play;
    for (const auto &c : candidates)
        if (!refused.count(c.file)) in_play.insert(c.file);
    for (const auto &[file, st] : files_)
        if (st.active && !in_play.count(file)) claim_all(file, *st.active);
    for (const auto &c : candidates) {
        if (!in_play.count(c.file)) continue;
        for (uint32_t i = 0; i < c.generation->desc->task_count; ++i) {
            const char *name = c.generation->desc->tasks[i].name;
            if (auto it = owner.find(name); it != owner.end() && it->second != c.file)
                return ClashRefusals::value_type{
                    c.file, std::string("duplicate task name '") + name + "': already provided by " + it->second};
        }
        claim_all(c.file, *c.generation);
    }
    return std::nullopt;
}

void PluginManager::commit_candidates(std::vector<Candidate> &candidates, const ClashRefusals &clashes,
                                      ReloadReport &report) {
    for (auto &c : candidates) {
        FileState &st = files_[c.file];
        if (auto clash = clashes.find(c.file); clash != clashes.end()) refuse(st, clash->second, true, report);
        else activate(st, std::move(c.generation), report);
    }
}

// The file's generation so far, if any, retires: jobs may still run on it.
void PluginManager::activate(FileState &st, std::shared_ptr<Generation> generation, ReloadReport &report) {
    if (st.active) {
        retired_.push_back(st.active);
        report.replaced.push_back(st.file);
    } else {
        report.added.push_back(st.file);
    }
    spdlog::info("plugin {} loaded: {} {} (generation {}, {} tasks{})", st.file, generation->name, generation->version,
                 generation->generation_number, generation->desc->task_count,
                 generation->in_process ? "" : ", run in worker processes");
    st.active = std::move(generation);
    st.error.clear();
    st.refused_hash.clear();
    st.conflict = false;
}

// `conflict`: refused for a name clash, so examined again at the next reload.
void PluginManager::refuse(FileState &st, const std::string &reason, bool conflict, ReloadReport &report) {
    st.error = reason;
    st.refused_hash = st.hash;
    st.conflict = conflict;
    st.error_at_us = now_us();
    report.refused.push_back({st.file, reason, st.active != nullptr});
    spdlog::error("plugin {} refused: {}{}", st.file, reason, st.active ? " (the previous version keeps serving)" : "");
}

// The first reload publishes; later ones only when a generation came or
// went, as otherwise the published registry is still exact.
bool PluginManager::snapshot_is_stale(const ReloadReport &report) const {
    return snapshot_version_ == 0 || !report.added.empty() || !report.replaced.empty() || !report.removed.empty();
}

void PluginManager::publish_snapshot() {
    auto snapshot = std::make_shared<registry::Snapshot>();
    snapshot->version = ++snapshot_version_;
    for (const auto &[file, st] : files_)
        if (st.active) add_tasks(*snapshot, st.active);
    // The tasks of a quarantined version answer why they cannot run, unless
    // another plugin serves the name.
    for (const auto &[file, st] : files_) {
        if (st.active || !st.quarantine) continue;
        const model::PluginFaults &q = *st.quarantine;
        const std::string why =
            "plugin " + q.name + " " + q.version + " (" + file + ") is quarantined: " + q.last_reason;
        const json names = json::parse(q.tasks_json, nullptr, false);
        if (!names.is_array()) continue;
        for (const auto &name : names)
            if (name.is_string() && !snapshot->tasks.count(name.get<std::string>()))
                snapshot->unavailable.emplace(name.get<std::string>(), why);
    }
    registry_.publish(std::move(snapshot));
}

void PluginManager::reload_started() {
    std::lock_guard lock(progress_mu_);
    ReloadProgress::Running running;
    running.started_at_us = now_us();
    running.started = std::chrono::steady_clock::now();
    progress_.running = std::move(running);
}

void PluginManager::reload_finished() {
    std::lock_guard lock(progress_mu_);
    if (!progress_.running) return;
    const ReloadProgress::Running &r = *progress_.running;
    progress_.last = ReloadProgress::Finished{
        now_us(), std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count(), r.slowest_file,
        r.slowest_s};
    progress_.running.reset();
}

void PluginManager::loading(const std::string &file) {
    std::lock_guard lock(progress_mu_);
    if (!progress_.running) return;
    progress_.running->loading = file;
    progress_.running->loading_since = std::chrono::steady_clock::now();
}

void PluginManager::loaded() {
    std::lock_guard lock(progress_mu_);
    if (!progress_.running) return;
    ReloadProgress::Running &r = *progress_.running;
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.loading_since).count();
    if (r.slowest_file.empty() || took > r.slowest_s) {
        r.slowest_file = r.loading;
        r.slowest_s = took;
    }
    r.loading.clear();
}

PluginManager::ReloadProgress PluginManager::reload_progress() const {
    std::lock_guard lock(progress_mu_);
    return progress_;
}

// Retired generations are listed while something holds them; forgets the
// ones nobody holds any more (their deleter has queued them for unloading).
void PluginManager::forget_released() {
    std::erase_if(retired_, [](const std::weak_ptr<Generation> &g) { return g.expired(); });
}

std::shared_ptr<const PluginManager::View> PluginManager::view() const {
    std::lock_guard lock(view_mu_);
    return view_;
}

PluginManager::Counts PluginManager::counts() const { return view()->counts; }

std::vector<std::string> PluginManager::problems() const { return view()->problems; }

std::string PluginManager::describe_json() const {
    const std::shared_ptr<const View> v = view();
    json out = json::array();
    for (const auto &e : v->entries) {
        const std::shared_ptr<Generation> g = e.generation.lock();
        if (e.retired && !g) continue;  // released since: unloaded at the next reload
        json item = e.body;
        if (g) item["jobs_in_flight"] = g->in_flight.load();
        out.push_back(std::move(item));
    }
    return out.dump();
}

void PluginManager::publish_view() {
    auto v = std::make_shared<View>();
    Counts &c = v->counts;
    c.reloads = reloads_;
    for (const auto &[file, st] : files_) {
        if (st.active) ++c.active;
        if (!st.error.empty()) ++c.refused;
        if (st.quarantine) ++c.quarantined;
    }
    if (!folder_error_.empty()) v->problems.push_back(folder_error_);
    for (const auto &[file, st] : files_) {
        if (st.quarantine && !st.active) v->problems.push_back(file + " is quarantined: " + st.quarantine->last_reason);
        else if (!st.error.empty())
            v->problems.push_back(file + " was refused" + (st.active ? " (its previous version serves)" : "") + ": " +
                                  st.error);
    }

    auto entry = [](const Generation &g, std::string_view state) {
        json tasks = json::array();
        for (uint32_t i = 0; i < g.desc->task_count; ++i) tasks.push_back(g.desc->tasks[i].name);
        return json{{"file", g.file},
                    {"name", g.name},
                    {"version", g.version},
                    {"hash", g.hash},
                    {"generation", g.generation_number},
                    {"loaded_at", iso8601_utc(g.loaded_at_us)},
                    {"tasks", std::move(tasks)},
                    {"jobs_in_flight", g.in_flight.load()},
                    {"state", state},
                    {"build_info", g.desc->build_info ? json(g.desc->build_info) : json(nullptr)},
                    {"error", nullptr}};
    };
    for (const auto &[file, st] : files_) {
        json e;
        if (st.active) {
            e = entry(*st.active, "active");
        } else {
            e = {
                {"file", file},           {"name", nullptr},       {"version", nullptr},
                {"hash", st.hash},        {"generation", nullptr}, {"loaded_at", nullptr},
                {"tasks", json::array()}, {"jobs_in_flight", 0},   {"state", st.quarantine ? "quarantined" : "refused"},
                {"build_info", nullptr}};
        }
        if (!st.error.empty()) {
            e["error"] = st.error;
            e["error_at"] = iso8601_utc(st.error_at_us);
            e["refused_hash"] = st.refused_hash;
        } else {
            e["error"] = nullptr;
        }
        if (st.quarantine) {
            const model::PluginFaults &q = *st.quarantine;
            if (!st.active) {
                e["name"] = q.name;
                e["version"] = q.version;
                e["tasks"] =
                    json::parse(q.tasks_json, nullptr, false).is_array() ? json::parse(q.tasks_json) : json::array();
                e["error"] = "quarantined: " + q.last_reason;
            }
            e["quarantine"] = {{"hash", q.hash},       {"reason", q.last_reason},
                               {"crashes", q.crashes}, {"load_failures", q.load_failures},
                               {"hangs", q.hangs},     {"since", iso8601_utc(q.quarantined_at)}};
        }
        v->entries.push_back({std::move(e), st.active, false});
    }
    for (const auto &weak : retired_) {
        if (auto g = weak.lock()) {
            json e = entry(*g, "retired");
            e["note"] = "kept mapped while jobs run on it; unloaded at the next reload after its last job";
            v->entries.push_back({std::move(e), g, true});
        }
    }
    std::lock_guard lock(view_mu_);
    view_ = std::move(v);
}

}  // namespace taskhost::plugins
