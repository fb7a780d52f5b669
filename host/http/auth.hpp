// API keys: when configured, every request but those to the exempt paths
// must carry one of them in a header (X-API-Key by default), as the
// original's optional authentication. Off unless keys are given.
#pragma once

#include <array>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "util/sha256.hpp"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace taskhost::http {

class ApiKeys {
public:
    // Keys from a comma-separated list and from a file (one per line; '#'
    // starts a comment; blanks around a key are ignored). Throws
    // std::runtime_error if the file cannot be read or no key is given.
    ApiKeys(std::string list, std::string file);

    // Reads the file again (SIGHUP), so keys rotate without a restart. If it
    // cannot be read or holds no key, the current keys stay and this throws.
    // Returns how many keys there are now.
    size_t reload();

    size_t size() const;
    // Compares SHA-256 digests in constant time, so the answer's timing
    // says nothing about how much of a key was right.
    bool accepts(std::string_view key) const;

private:
    using Digest = Sha256;
    std::vector<Digest> read() const;

    const std::string list_, file_;
    mutable std::shared_mutex mu_;
    std::vector<Digest> digests_;  // only digests are kept; never empty
};

struct AuthOptions {
    std::shared_ptr<const ApiKeys> keys;  // null: no authentication
    std::string header = "X-API-Key";
    // Paths served without a key: the original's defaults, and the console's
    // files (it asks for a key in the page). An entry ending in '/' is a
    // prefix; the others match exactly.
    std::vector<std::string> exempt = {"/",       "/docs",          "/redoc",   "/openapi.json",
                                       "/health", "/manifest.json", "/console/"};

    bool enabled() const { return keys != nullptr; }
    bool is_exempt(std::string_view path) const;
};

// True if the request may go on; otherwise answers 401 problem+json
// (missing header, or a key that is not one of them) and returns false.
bool authorize(const AuthOptions &auth, const httplib::Request &req, httplib::Response &res);

}  // namespace taskhost::http
