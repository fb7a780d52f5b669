#include "jobs/remote_watch.hpp"

#include <utility>

namespace taskhost::jobs {

RemoteWatch::Interest::Interest(RemoteWatch &watch, std::string id) : watch_(watch), id_(std::move(id)) {
    std::lock_guard lock(watch_.mu_);
    ++watch_.jobs_[id_].interests;
}

RemoteWatch::Interest::~Interest() {
    std::lock_guard lock(watch_.mu_);
    auto it = watch_.jobs_.find(id_);
    if (it != watch_.jobs_.end() && --it->second.interests == 0) watch_.jobs_.erase(it);
}

uint64_t RemoteWatch::Interest::changes() const {
    std::lock_guard lock(watch_.mu_);
    return watch_.jobs_.at(id_).changes;
}

void RemoteWatch::Interest::wait(uint64_t seen, std::chrono::steady_clock::time_point until,
                                 std::stop_token abandon) const {
    std::unique_lock lock(watch_.mu_);
    watch_.cv_.wait_until(lock, abandon, until,
                          [&] { return watch_.released_ || watch_.jobs_.at(id_).changes != seen; });
}

void RemoteWatch::changed(const std::string &id) {
    {
        std::lock_guard lock(mu_);
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;  // nobody here waits on it
        ++it->second.changes;
    }
    cv_.notify_all();
}

void RemoteWatch::release() {
    {
        std::lock_guard lock(mu_);
        released_ = true;
    }
    cv_.notify_all();
}

}  // namespace taskhost::jobs
