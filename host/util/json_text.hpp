// Small helpers to write JSON text directly into a string on hot paths
// (job records, artifacts), where building a DOM first would cost twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost::json_text {

// Appends `s` as a quoted JSON string. Invalid UTF-8 bytes become U+FFFD.
void append_string(std::string &out, std::string_view s);
void append_optional_string(std::string &out, const std::optional<std::string> &s);
void append_number(std::string &out, double v);  // NaN/inf → null
void append_int(std::string &out, int64_t v);

// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code
// points beyond U+10FFFF): what a JSON string may hold as is.
bool is_valid_utf8(std::string_view s);
// `s` with each byte that is not part of well-formed UTF-8 replaced by
// U+FFFD (as append_string does).
std::string valid_utf8(std::string_view s);

// True if brackets in `text` nest deeper than `max_depth` (strings are
// skipped). Checked before parsing untrusted input, since a recursive parser
// would otherwise exhaust the stack on "[[[[...".
bool nesting_exceeds(std::string_view text, size_t max_depth);

// Object writer: obj.field("k").raw(...) etc. Commas handled for you.
class Object {
public:
    explicit Object(std::string &out) : out_(out) { out_.push_back('{'); }
    ~Object() { out_.push_back('}'); }
    Object(const Object &) = delete;
    Object &operator=(const Object &) = delete;

    std::string &key(std::string_view k) {
        if (!first_) out_.push_back(',');
        first_ = false;
        append_string(out_, k);
        out_.push_back(':');
        return out_;
    }
    void raw(std::string_view k, std::string_view json) { key(k).append(json); }
    void str(std::string_view k, std::string_view v) { append_string(key(k), v); }
    void opt_str(std::string_view k, const std::optional<std::string> &v) { append_optional_string(key(k), v); }
    void num(std::string_view k, double v) { append_number(key(k), v); }
    void integer(std::string_view k, int64_t v) { append_int(key(k), v); }
    void boolean(std::string_view k, bool v) { key(k).append(v ? "true" : "false"); }
    void null(std::string_view k) { key(k).append("null"); }

private:
    std::string &out_;
    bool first_ = true;
};

}  // namespace taskhost::json_text
