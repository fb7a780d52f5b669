#include "util/ulid.hpp"

#include <chrono>
#include <mutex>
#include <random>

#include <pthread.h>

namespace taskhost {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// Decoding table: -1 for every byte outside the uppercase Crockford alphabet
// (lowercase and I, L, O, U are rejected, as the original service does).
struct DecodeTable {
    int8_t v[256];
    constexpr DecodeTable() : v{} {
        for (int i = 0; i < 256; ++i) v[i] = -1;
        for (int i = 0; i < 32; ++i) v[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
    }
};
constexpr DecodeTable kDecode{};

// xoshiro256** : fast, good statistical quality; ids need uniqueness, not secrecy.
struct Xoshiro {
    uint64_t s[4];
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
};

// The whole generator is process-wide and mutex-guarded: monotonicity across
// threads needs one shared "last id" anyway, and the critical section is a
// few nanoseconds.
struct Generator {
    std::mutex mu;
    bool seeded = false;
    Xoshiro rng{};
    uint64_t last_ms = 0;
    uint16_t last_hi = 0;  // top 16 bits of the 80 random bits
    uint64_t last_lo = 0;  // low 64 bits

    void seed() {
        std::random_device rd;  // getrandom() on Linux; read once, not per id
        for (auto &word : rng.s) word = (static_cast<uint64_t>(rd()) << 32) ^ rd();
        if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0) rng.s[0] = 1;
        seeded = true;
    }
};

Generator &generator() {
    static Generator *g = [] {
        auto *gen = new Generator();  // never destroyed: ids may be made during static teardown
        // A forked child must not replay the parent's random stream; holding
        // the mutex across fork() keeps the child's copy of it unlocked.
        pthread_atfork([] { generator().mu.lock(); }, [] { generator().mu.unlock(); },
                       [] {
                           generator().seeded = false;
                           generator().mu.unlock();
                       });
        return gen;
    }();
    return *g;
}

}  // namespace

std::string Ulid::str() const {
    // 128 bits → 26 base32 digits (the first digit carries only 3 bits).
    unsigned __int128 value = 0;
    for (uint8_t b : bytes) value = (value << 8) | b;
    std::string out(26, '0');
    for (int i = 25; i >= 0; --i) {
        out[static_cast<size_t>(i)] = kAlphabet[static_cast<unsigned>(value & 31)];
        value >>= 5;
    }
    return out;
}

uint64_t Ulid::timestamp_ms() const {
    uint64_t ms = 0;
    for (int i = 0; i < 6; ++i) ms = (ms << 8) | bytes[static_cast<size_t>(i)];
    return ms;
}

Ulid new_ulid() {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    uint64_t ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
    ms &= (uint64_t{1} << 48) - 1;

    Generator &g = generator();
    uint64_t hi, lo;
    {
        std::lock_guard lock(g.mu);
        if (!g.seeded) g.seed();
        if (ms > g.last_ms) {
            g.last_ms = ms;
            g.last_hi = static_cast<uint16_t>(g.rng.next());
            g.last_lo = g.rng.next();
        } else {
            // Same millisecond (or the clock stepped back): keep the last
            // timestamp and count up so ids still sort in creation order.
            if (++g.last_lo == 0 && ++g.last_hi == 0) {
                // 80-bit overflow (practically unreachable): borrow the next ms.
                ++g.last_ms;
                g.last_hi = static_cast<uint16_t>(g.rng.next());
                g.last_lo = g.rng.next();
            }
        }
        ms = g.last_ms;
        hi = g.last_hi;
        lo = g.last_lo;
    }

    Ulid id;
    for (int i = 0; i < 6; ++i) id.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
    id.bytes[6] = static_cast<uint8_t>(hi >> 8);
    id.bytes[7] = static_cast<uint8_t>(hi);
    for (int i = 0; i < 8; ++i) id.bytes[static_cast<size_t>(8 + i)] = static_cast<uint8_t>(lo >> (8 * (7 - i)));
    return id;
}

std::string new_ulid_string() { return new_ulid().str(); }

std::optional<Ulid> parse_ulid(std::string_view text) {
    if (text.size() != 26) return std::nullopt;
    unsigned __int128 value = 0;
    for (size_t i = 0; i < 26; ++i) {
        const int8_t d = kDecode.v[static_cast<unsigned char>(text[i])];
        if (d < 0) return std::nullopt;
        value = (value << 5) | static_cast<unsigned>(d);
    }
    // The first digit may only carry 3 bits (0-7), or the value exceeds 128 bits.
    if (kDecode.v[static_cast<unsigned char>(text[0])] > 7) return std::nullopt;
    Ulid id;
    for (int i = 15; i >= 0; --i) {
        id.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(value);
        value >>= 8;
    }
    return id;
}

}  // namespace taskhost
