#include "http/auth.hpp"

#include <fstream>
#include <stdexcept>

#include <httplib.h>
#include <openssl/crypto.h>

#include "http/problem.hpp"
#include "util/text.hpp"

namespace taskhost::http {

ApiKeys::ApiKeys(std::string list, std::string file) : list_(std::move(list)), file_(std::move(file)) {
    digests_ = read();
}

std::vector<ApiKeys::Digest> ApiKeys::read() const {
    std::vector<Digest> digests;
    auto add = [&](std::string_view key) {
        key = trim(key);
        if (key.empty()) return;
        const Digest digest = sha256(key);
        for (const auto &d : digests)
            if (d == digest) return;
        digests.push_back(digest);
    };
    for (std::string_view key : split(list_, ',')) add(key);
    if (!file_.empty()) {
        std::ifstream in(file_);
        if (!in) throw std::runtime_error("cannot read the API keys file " + file_);
        std::string line;
        while (std::getline(in, line)) add(std::string_view(line).substr(0, line.find('#')));
        if (in.bad()) throw std::runtime_error("cannot read the API keys file " + file_);
    }
    // Serving without keys because a file came up empty would open the
    // service to anyone: refuse instead.
    if (digests.empty())
        throw std::runtime_error("no API key was given" + (file_.empty() ? std::string() : " (in " + file_ + ")"));
    return digests;
}

size_t ApiKeys::reload() {
    auto digests = read();
    std::unique_lock lock(mu_);
    digests_ = std::move(digests);
    return digests_.size();
}

size_t ApiKeys::size() const {
    std::shared_lock lock(mu_);
    return digests_.size();
}

bool ApiKeys::accepts(std::string_view key) const {
    const auto digest = sha256(key);
    bool found = false;
    std::shared_lock lock(mu_);
    for (const auto &d : digests_) found |= CRYPTO_memcmp(d.data(), digest.data(), d.size()) == 0;
    return found;
}

bool AuthOptions::is_exempt(std::string_view path) const {
    for (const auto &p : exempt)
        if (p == path || (p.size() > 1 && p.back() == '/' && path.substr(0, p.size()) == p)) return true;
    return false;
}

bool authorize(const AuthOptions &auth, const httplib::Request &req, httplib::Response &res) {
    if (!auth.enabled() || auth.is_exempt(req.path)) return true;
    std::string detail;
    if (!req.has_header(auth.header.c_str())) {
        detail = "Missing authentication header: " + auth.header;
    } else if (!auth.keys->accepts(req.get_header_value(auth.header.c_str()))) {
        detail = "Invalid API key";
    } else {
        return true;
    }
    // RFC 9110 asks a 401 to name a challenge; this one says which header to send.
    res.set_header("WWW-Authenticate", "ApiKey header=\"" + auth.header + "\"");
    problem(res, 401, detail, req.path);
    return false;
}

}  // namespace taskhost::http
