// ULIDs: 48-bit millisecond timestamp + 80 random bits, Crockford base32.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost {

struct Ulid {
    std::array<uint8_t, 16> bytes{};

    // Canonical 26-char uppercase form.
    std::string str() const;
    uint64_t timestamp_ms() const;
    friend bool operator==(const Ulid &, const Ulid &) = default;
    friend auto operator<=>(const Ulid &, const Ulid &) = default;
};

// A new ULID; monotonic within the same millisecond (the random part is
// incremented), so ids made by one process sort in creation order.
Ulid new_ulid();
std::string new_ulid_string();

// Accepts exactly 26 chars of ^[0-7][0-9A-HJKMNP-TV-Z]{25}$ (uppercase only,
// as the original service does); anything else is nullopt.
std::optional<Ulid> parse_ulid(std::string_view text);
inline bool is_valid_ulid(std::string_view text) { return parse_ulid(text).has_value(); }

}  // namespace taskhost
