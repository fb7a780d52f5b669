#include "model/retry.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/clock.hpp"

namespace taskhost::model {

using nlohmann::json;

int64_t retry_delay_us(const RetryPolicy &p, int failed, double unit) {
    double s = p.delay_s;
    if (p.backoff == Backoff::exponential) {
        // 2^(failed-1), without overflow for a long run of failures.
        s = p.delay_s * std::exp2(std::min(failed - 1, 60));
        s = std::min(s, std::max(p.max_delay_s, p.delay_s));
    }
    if (p.jitter) s *= 1 - kRetryJitter + 2 * kRetryJitter * std::clamp(unit, 0.0, 1.0);
    if (p.backoff == Backoff::exponential) s = std::min(s, std::max(p.max_delay_s, p.delay_s));
    s = std::clamp(s, 0.0, kMaxRetryDelayS);
    return static_cast<int64_t>(std::llround(s * 1e6));
}

std::string render_retry(const RetryPolicy &p) {
    return json{{"max_attempts", p.max_attempts},
                {"backoff", p.backoff == Backoff::fixed ? "fixed" : "exponential"},
                {"delay_s", p.delay_s},
                {"max_delay_s", p.max_delay_s},
                {"jitter", p.jitter}}
        .dump();
}

RetryPolicy parse_stored_retry(std::string_view text, const RetryPolicy &base) {
    RetryPolicy p = base;
    if (text.empty()) return p;
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && apply_retry_json(j, p)) return base;
    return p;
}

std::optional<std::string> apply_retry_json(const json &given, RetryPolicy &policy) {
    if (!given.is_object()) return "\"retry\" must be an object";
    RetryPolicy p = policy;
    for (const auto &item : given.items()) {
        // Not a structured binding: clang 14 (the sanitizer builds) cannot
        // capture one in a lambda.
        const std::string &key = item.key();
        const json &value = item.value();
        const std::string where = "\"retry\"." + key;
        auto seconds = [&](double &out) -> std::optional<std::string> {
            if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0 ||
                value.get<double>() > kMaxRetryDelayS)
                return where + " must be a number of seconds from 0 to " + std::to_string(int(kMaxRetryDelayS));
            out = value.get<double>();
            return std::nullopt;
        };
        if (key == "max_attempts") {
            // As JSON Schema's integer (and a submit's priority): 3.0 is 3.
            const double n = value.is_number() ? value.get<double>() : NAN;
            if (!(n >= 1 && n <= kMaxAttempts) || n != std::floor(n))
                return where + " must be an integer from 1 to " + std::to_string(kMaxAttempts);
            p.max_attempts = static_cast<int>(n);
        } else if (key == "backoff") {
            if (value == "fixed") p.backoff = Backoff::fixed;
            else if (value == "exponential") p.backoff = Backoff::exponential;
            else return where + " must be \"fixed\" or \"exponential\"";
        } else if (key == "delay_s") {
            if (auto e = seconds(p.delay_s)) return e;
        } else if (key == "max_delay_s") {
            if (auto e = seconds(p.max_delay_s)) return e;
        } else if (key == "jitter") {
            if (!value.is_boolean()) return where + " must be true or false";
            p.jitter = value.get<bool>();
        } else {
            return "unknown member " + where + " (known: max_attempts, backoff, delay_s, max_delay_s, jitter)";
        }
    }
    policy = p;
    return std::nullopt;
}

namespace {

// At most `max` bytes of UTF-8 text, cut before a continuation byte.
std::string cut_utf8(std::string_view text, size_t max) {
    if (text.size() <= max) return std::string(text);
    size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return std::string(text.substr(0, n)) + "…";
}

}  // namespace

std::string append_attempt(std::string_view log, const FailedAttempt &a) {
    json all = log.empty() ? json::array() : json::parse(log, nullptr, false);
    if (!all.is_array()) all = json::array();
    json entry = {{"attempt", a.attempt},
                  {"started_at", a.started_at},
                  {"finished_at", a.finished_at},
                  {"error", cut_utf8(a.error, kMaxAttemptError)}};
    if (!a.run_by.empty()) entry["run_by"] = a.run_by;
    all.push_back(std::move(entry));
    return all.dump(-1, ' ', false, json::error_handler_t::replace);
}

void render_attempt_log(std::string &out, std::string_view log) {
    const json all = log.empty() ? json::array() : json::parse(log, nullptr, false);
    nlohmann::ordered_json shown = nlohmann::ordered_json::array();
    if (all.is_array())
        for (const auto &e : all) {
            if (!e.is_object()) continue;
            auto time = [&](const char *key) -> nlohmann::ordered_json {
                auto it = e.find(key);
                if (it == e.end() || !it->is_number_integer() || it->get<int64_t>() == 0) return nullptr;
                return iso8601_utc(it->get<int64_t>());
            };
            auto run_by = e.find("run_by");
            auto error = e.find("error");
            auto attempt = e.find("attempt");
            shown.push_back({{"attempt", attempt != e.end() && attempt->is_number_integer() ? attempt->get<int>() : 0},
                             {"started_at", time("started_at")},
                             {"finished_at", time("finished_at")},
                             {"error", error != e.end() && error->is_string() ? error->get<std::string>() : ""},
                             {"run_by", run_by != e.end() && run_by->is_string()
                                            ? nlohmann::ordered_json(run_by->get<std::string>())
                                            : nlohmann::ordered_json(nullptr)}});
        }
    out += shown.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace taskhost::model
