// Idempotency keys on one host: the submits that carry the same key are
// decided one at a time, so that of 16 identical ones racing, one makes
// the job and the others get it. The store backs the decision across
// restarts and, in a fleet, across hosts (a unique index on the key); this
// only orders the submits of this process and saves the store a read for a
// key seen lately.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace taskhost::jobs {

class IdempotencyKeys {
public:
    // What a submit with a key is to do.
    struct Claim {
        enum class Kind {
            make,      // make the job, then made() or given_up()
            existing,  // the key's job: `job_id`, asked with `request_hash`
        };
        Kind kind = Kind::make;
        std::string job_id, request_hash;
    };

    // Waits (up to `wait`) while another submit with `key` is deciding.
    // `valid_from`: entries made before it have expired. Returns make with
    // the key held by this caller, or the key's job. Throws if the wait
    // runs out (the other submit is stuck on the store).
    Claim claim(const std::string &key, int64_t now, int64_t valid_from, std::chrono::milliseconds wait);
    // The holder of `key` made (or found) its job: submits waiting on it get it.
    void made(const std::string &key, const std::string &job_id, const std::string &request_hash, int64_t submitted_at);
    // The holder could not: the next submit with the key tries.
    void given_up(const std::string &key);
    // The key's job `job_id` is gone (deleted): the key is free, unless
    // another submit has taken it up since (then it stays theirs).
    void forget_job(const std::string &key, const std::string &job_id);

    size_t size() const;

private:
    struct Entry {
        bool deciding = true;
        std::string job_id, request_hash;
        int64_t submitted_at = 0;
    };
    void sweep_locked(int64_t valid_from);

    mutable std::mutex mu_;
    std::condition_variable decided_;
    std::unordered_map<std::string, Entry> keys_;
    // Bounded: past this, expired entries go, then decided ones (the store
    // still has them).
    static constexpr size_t kMaxKeys = 100'000;
};

}  // namespace taskhost::jobs
