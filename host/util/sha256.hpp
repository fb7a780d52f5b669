// SHA-256 (OpenSSL's EVP interface): plugin content hashes and API key
// digests.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace taskhost {

using Sha256 = std::array<unsigned char, 32>;

Sha256 sha256(std::string_view bytes);
// Lowercase hex, 64 characters.
std::string to_hex(const Sha256 &digest);

}  // namespace taskhost
