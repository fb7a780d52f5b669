#include "util/sha256.hpp"

#include <openssl/evp.h>

namespace taskhost {

Sha256 sha256(std::string_view bytes) {
    Sha256 digest{};
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest.data(), &len, EVP_sha256(), nullptr);
    return digest;
}

std::string to_hex(const Sha256 &digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(digest.size() * 2);
    for (unsigned char byte : digest) {
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xF]);
    }
    return out;
}

}  // namespace taskhost
