#include "jobs/idempotency.hpp"

#include <iterator>
#include <stdexcept>

namespace taskhost::jobs {

IdempotencyKeys::Claim IdempotencyKeys::claim(const std::string &key, int64_t now, int64_t valid_from,
                                              std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        auto it = keys_.find(key);
        if (it == keys_.end() || (!it->second.deciding && it->second.submitted_at < valid_from)) {
            if (keys_.size() >= kMaxKeys) sweep_locked(valid_from);
            Entry &held = keys_[key];
            held = Entry{};
            held.submitted_at = now;
            return Claim{};
        }
        if (!it->second.deciding)
            return Claim{Claim::Kind::existing, it->second.job_id, it->second.request_hash};
        if (decided_.wait_until(lock, deadline) == std::cv_status::timeout)
            throw std::runtime_error("another request with this Idempotency-Key is still being stored");
    }
}

void IdempotencyKeys::made(const std::string &key, const std::string &job_id, const std::string &request_hash,
                           int64_t submitted_at) {
    {
        std::lock_guard lock(mu_);
        Entry &e = keys_[key];
        e.deciding = false;
        e.job_id = job_id;
        e.request_hash = request_hash;
        e.submitted_at = submitted_at;
    }
    decided_.notify_all();
}

void IdempotencyKeys::given_up(const std::string &key) {
    {
        std::lock_guard lock(mu_);
        keys_.erase(key);
    }
    decided_.notify_all();
}

void IdempotencyKeys::forget_job(const std::string &key, const std::string &job_id) {
    {
        std::lock_guard lock(mu_);
        auto it = keys_.find(key);
        if (it == keys_.end() || it->second.deciding || it->second.job_id != job_id) return;
        keys_.erase(it);
    }
    decided_.notify_all();
}

size_t IdempotencyKeys::size() const {
    std::lock_guard lock(mu_);
    return keys_.size();
}

void IdempotencyKeys::sweep_locked(int64_t valid_from) {
    std::erase_if(keys_, [&](const auto &kv) { return !kv.second.deciding && kv.second.submitted_at < valid_from; });
    // Still full: forget decided ones (the store answers for them).
    for (auto it = keys_.begin(); keys_.size() >= kMaxKeys / 2 && it != keys_.end();)
        it = it->second.deciding ? std::next(it) : keys_.erase(it);
}

}  // namespace taskhost::jobs
