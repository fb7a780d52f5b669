#include "registry/registry.hpp"

#include <algorithm>

namespace taskhost::registry {

bool Task::has_tags(const std::vector<std::string> &wanted) const {
    return std::all_of(wanted.begin(), wanted.end(),
                       [&](const std::string &t) { return std::find(tags.begin(), tags.end(), t) != tags.end(); });
}

std::shared_ptr<const Task> Snapshot::find(std::string_view name) const {
    auto it = tasks.find(name);
    return it == tasks.end() ? nullptr : it->second;
}

const std::string *Snapshot::why_unavailable(std::string_view name) const {
    auto it = unavailable.find(name);
    return it == unavailable.end() ? nullptr : &it->second;
}

}  // namespace taskhost::registry
