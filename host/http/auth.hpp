// API keys: when configured, every request but those to the exempt paths
// must carry one of them in a header (X-API-Key by default), as the
// original's optional authentication. Off unless keys are given.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace taskhost::http {

class ApiKeys {
public:
    // Keys from a comma-separated list and from a file (one per line; '#'
    // starts a comment; blanks around a key are ignored). Throws
    // std::runtime_error if the file cannot be read.
    static ApiKeys load(std::string_view list, const std::string &file);

    bool empty() const { return digests_.empty(); }
    size_t size() const { return digests_.size(); }
    // Compares SHA-256 digests in constant time, so the answer's timing
    // says nothing about how much of a key was right.
    bool accepts(std::string_view key) const;

private:
    void add(std::string_view key);
    std::vector<std::array<unsigned char, 32>> digests_;  // only digests are kept
};

struct AuthOptions {
    std::shared_ptr<const ApiKeys> keys;  // null or empty: no authentication
    std::string header = "X-API-Key";
    // Exact paths served without a key (the original's defaults).
    std::vector<std::string> exempt = {"/", "/docs", "/redoc", "/openapi.json", "/health"};

    bool enabled() const { return keys && !keys->empty(); }
    bool is_exempt(std::string_view path) const;
};

// True if the request may go on; otherwise answers 401 problem+json
// (missing header, or a key that is not one of them) and returns false.
bool authorize(const AuthOptions &auth, const httplib::Request &req, httplib::Response &res);

}  // namespace taskhost::http
