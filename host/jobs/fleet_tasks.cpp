#include "jobs/fleet_tasks.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/job.hpp"
#include "schema/json_schema.hpp"
#include "store/store.hpp"

namespace taskhost::jobs {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFindMaxAge{1000};
constexpr std::chrono::milliseconds kFindMissMaxAge{100};
constexpr std::chrono::milliseconds kRetryAfterFailure{1000};

// Major versions compare as numbers where they are ("10" after "9").
bool newer_major(std::string_view a, std::string_view b) {
    uint64_t x = 0, y = 0;
    const bool ax = std::from_chars(a.data(), a.data() + a.size(), x).ec == std::errc() && !a.empty();
    const bool by = std::from_chars(b.data(), b.data() + b.size(), y).ec == std::errc() && !b.empty();
    if (ax && by) return x > y;
    return a > b;
}

}  // namespace

bool FleetTasks::Task::has_tags(const std::vector<std::string> &wanted) const {
    return std::all_of(wanted.begin(), wanted.end(),
                       [&](const std::string &t) { return std::find(tags.begin(), tags.end(), t) != tags.end(); });
}

std::shared_ptr<const FleetTasks::Catalogue> FleetTasks::get(std::chrono::milliseconds max_age) const {
    auto usable = [&]() -> std::shared_ptr<const Catalogue> {
        std::lock_guard lock(mu_);
        const auto now = Clock::now();
        const bool failed_lately = !failure_.empty() && now - failed_at_ < kRetryAfterFailure;
        if (current_ && (now - current_->read_at <= max_age || failed_lately)) return current_;
        if (!current_ && failed_lately) throw std::runtime_error(failure_);
        return nullptr;
    };
    if (auto catalogue = usable()) return catalogue;
    std::unique_lock reading(read_mu_, std::defer_lock);
    std::shared_ptr<const Catalogue> previous;
    {
        std::lock_guard lock(mu_);
        previous = current_;
    }
    if (previous) {
        if (!reading.try_lock()) return previous;  // another caller is reading
    } else {
        reading.lock();
    }
    if (auto catalogue = usable()) return catalogue;  // read meanwhile
    try {
        auto fresh = read(previous.get());
        std::lock_guard lock(mu_);
        failure_.clear();
        return current_ = std::move(fresh);
    } catch (const std::exception &e) {
        std::lock_guard lock(mu_);
        failed_at_ = Clock::now();
        failure_ = e.what();
        if (!current_) throw;
        // The database is away: what was read last stands (a submit
        // fails at its insert anyway).
        spdlog::debug("the fleet's tasks could not be read again: {}", e.what());
        return current_;
    }
}

std::shared_ptr<const FleetTasks::Catalogue> FleetTasks::find(std::string_view name, const Task *&task) const {
    auto catalogue = get(kFindMaxAge);
    auto it = catalogue->tasks.find(name);
    if (it == catalogue->tasks.end() && Clock::now() - catalogue->read_at > kFindMissMaxAge) {
        catalogue = get(kFindMissMaxAge);
        it = catalogue->tasks.find(name);
    }
    task = it == catalogue->tasks.end() ? nullptr : &it->second;
    return catalogue;
}

std::shared_ptr<const FleetTasks::Catalogue> FleetTasks::read(const Catalogue *previous) const {
    using nlohmann::json;
    auto out = std::make_shared<Catalogue>();
    out->read_at = Clock::now();
    for (const auto &host : store_.hosts()) {
        const json tasks = json::parse(host.tasks_json, nullptr, /*allow_exceptions=*/false);
        if (!tasks.is_array()) continue;
        for (const json &info : tasks) {
            if (!info.is_object() || !info.contains("name") || !info["name"].is_string()) continue;
            const std::string name = info["name"].get<std::string>();
            std::string version;
            if (auto p = info.find("plugin"); p != info.end() && p->is_object())
                if (auto v = p->find("version"); v != p->end() && v->is_string()) version = v->get<std::string>();
            Task &task = out->tasks[name];
            task.hosts.push_back(host.id);
            if (!task.info_json.empty() &&
                !newer_major(model::major_version(version), model::major_version(task.plugin_version)))
                continue;
            task.info_json = info.dump();
            task.plugin_version = version;
            task.tags.clear();
            if (auto t = info.find("tags"); t != info.end() && t->is_array())
                for (const json &tag : *t)
                    if (tag.is_string()) task.tags.push_back(tag.get<std::string>());
            auto timeout = info.find("timeout_s");
            task.default_timeout_s = timeout != info.end() && timeout->is_number() ? timeout->get<double>() : 0;
            auto priority = info.find("priority");
            task.default_priority = priority != info.end() && priority->is_number_integer() ? priority->get<int>() : 0;
            task.retry = {};
            if (auto retry = info.find("retry"); retry != info.end() && retry->is_object())
                (void)model::apply_retry_json(*retry, task.retry);
            auto retry_safe = info.find("retry_safe");
            task.retry_safe = retry_safe != info.end() && retry_safe->is_boolean() && retry_safe->get<bool>();
            task.params_schema = nullptr;
            if (auto s = info.find("parameters_schema"); s != info.end() && s->is_object()) {
                // Compiled once per version of a task's description.
                const Task *before = nullptr;
                if (previous)
                    if (auto it = previous->tasks.find(name); it != previous->tasks.end()) before = &it->second;
                if (before && before->info_json == task.info_json) task.params_schema = before->params_schema;
                else if (auto compiled = schema::JsonSchema::compile(s->dump())) task.params_schema = *compiled;
            }
        }
    }
    return out;
}

}  // namespace taskhost::jobs
