// taskhost SDK: what a C++ parameter type means at the boundary. For every
// supported caller type T, value_traits<T> gives
//   annotation()  the type as people write it ("int", "std::vector<int>")
//   schema()      its JSON Schema
//   from_json()   the checked conversion, throwing InvalidParams with a
//                 one-line message that names the parameter
#pragma once

#include <taskhost/detail/exceptions.hpp>

#include <nlohmann/json.hpp>

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace taskhost {

using json = nlohmann::json;

namespace detail {

// Schemas keep their keys in the order we write them ("type" first): they are
// read by people in GET /api/v1/tasks.
using ordered_json = nlohmann::ordered_json;

// Where a value sits inside the params object. Built on the stack while
// converting and rendered only when something is wrong.
struct Path {
    const Path *parent = nullptr;
    std::string_view name;             // root: the parameter name
    std::size_t index = 0;             // array element
    const std::string *key = nullptr;  // object member

    std::string str() const {
        if (parent == nullptr) return "parameter '" + std::string(name) + "'";
        if (key != nullptr) return parent->str() + '[' + json(*key).dump() + ']';
        return parent->str() + '[' + std::to_string(index) + ']';
    }
};

[[noreturn]] inline void fail(const Path &at, const std::string &what) { throw InvalidParams(at.str() + ": " + what); }

inline const char *kind_of(const json &j) noexcept {
    switch (j.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned: return "integer";
        case json::value_t::number_float: return "number";
        case json::value_t::string: return "string";
        case json::value_t::array: return "array";
        case json::value_t::object: return "object";
        case json::value_t::binary: return "binary";
        case json::value_t::discarded: return "discarded";
    }
    return "unknown";
}

[[noreturn]] inline void fail_type(const Path &at, const char *expected, const json &got) {
    fail(at, std::string("expected ") + expected + ", got " + kind_of(got));
}

template <class T>
inline constexpr bool is_char_like_v =
    std::is_same_v<T, char> || std::is_same_v<T, wchar_t> || std::is_same_v<T, char8_t> ||
    std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>;

template <class T>
inline constexpr bool is_integer_v = std::is_integral_v<T> && !std::is_same_v<T, bool> && !is_char_like_v<T>;

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
inline constexpr bool is_optional_v = is_optional<T>::value;

template <class T>
struct is_container_we_describe : std::false_type {};
template <class T>
struct is_container_we_describe<std::vector<T>> : std::true_type {};
template <class T>
struct is_container_we_describe<std::map<std::string, T>> : std::true_type {};
template <class T>
struct is_container_we_describe<std::optional<T>> : std::true_type {};

template <class T>
std::string integer_name() {
    // int64_t is `long` on LP64 and `long long` elsewhere: name whichever it is
    // "int64_t", as people write it.
    if constexpr (std::is_same_v<T, int>) return "int";
    else if constexpr (std::is_same_v<T, unsigned int>) return "unsigned int";
    else if constexpr (std::is_same_v<T, std::int8_t>) return "int8_t";
    else if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8_t";
    else if constexpr (std::is_same_v<T, std::int16_t>) return "int16_t";
    else if constexpr (std::is_same_v<T, std::uint16_t>) return "uint16_t";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "int64_t";
    else if constexpr (std::is_same_v<T, std::uint64_t>) return "uint64_t";
    else if constexpr (std::is_same_v<T, long>) return "long";
    else if constexpr (std::is_same_v<T, unsigned long>) return "unsigned long";
    else if constexpr (std::is_same_v<T, long long>) return "long long";
    else if constexpr (std::is_same_v<T, unsigned long long>) return "unsigned long long";
    else return std::string(std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T)) + "_t";
}

template <class T, class = void>
struct value_traits {
    static constexpr bool supported = false;
};

template <>
struct value_traits<bool> {
    static constexpr bool supported = true;
    static std::string annotation() { return "bool"; }
    static ordered_json schema() { return {{"type", "boolean"}}; }
    static bool from_json(const json &j, const Path &at) {
        if (!j.is_boolean()) fail_type(at, "boolean", j);
        return j.get<bool>();
    }
};

template <class T>
struct value_traits<T, std::enable_if_t<is_integer_v<T>>> {
    static constexpr bool supported = true;
    static std::string annotation() { return integer_name<T>(); }
    static ordered_json schema() {
        ordered_json s = {{"type", "integer"}};
        // Bounds tell clients the real range; int64 is JSON's own range.
        if constexpr (sizeof(T) < 8) {
            s["minimum"] = static_cast<std::int64_t>(std::numeric_limits<T>::min());
            s["maximum"] = static_cast<std::int64_t>(std::numeric_limits<T>::max());
        } else if constexpr (std::is_unsigned_v<T>) {
            s["minimum"] = 0;
        }
        return s;
    }
    [[noreturn]] static void out_of_range(const json &j, const Path &at) {
        fail(at, j.dump() + " is out of range for " + annotation());
    }
    static T from_json(const json &j, const Path &at) {
        if (j.is_number_unsigned()) {  // nlohmann stores non-negative integers here
            const auto v = j.get<std::uint64_t>();
            if (!std::in_range<T>(v)) out_of_range(j, at);
            return static_cast<T>(v);
        }
        if (j.is_number_integer()) {
            const auto v = j.get<std::int64_t>();
            if (!std::in_range<T>(v)) out_of_range(j, at);
            return static_cast<T>(v);
        }
        if (j.is_number_float()) {
            // 3.0 is an integer for JSON Schema; 3.5 is not.
            const double d = j.get<double>();
            if (!std::isfinite(d) || std::trunc(d) != d) fail(at, j.dump() + " is not an integer");
            const double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);  // exclusive
            const double lo = std::is_signed_v<T> ? -hi : 0.0;
            if (d < lo || d >= hi) out_of_range(j, at);
            return static_cast<T>(d);
        }
        fail_type(at, "integer", j);
    }
};

template <class T>
struct value_traits<T, std::enable_if_t<std::is_floating_point_v<T>>> {
    static constexpr bool supported = true;
    static std::string annotation() {
        if constexpr (std::is_same_v<T, float>) return "float";
        else if constexpr (std::is_same_v<T, double>) return "double";
        else return "long double";
    }
    static ordered_json schema() { return {{"type", "number"}}; }
    static T from_json(const json &j, const Path &at) {
        if (!j.is_number()) fail_type(at, "number", j);
        const double d = j.get<double>();
        if constexpr (std::is_same_v<T, float>) {
            if (std::fabs(d) > static_cast<double>(FLT_MAX)) fail(at, j.dump() + " is out of range for float");
        }
        return static_cast<T>(d);
    }
};

template <>
struct value_traits<std::string> {
    static constexpr bool supported = true;
    static std::string annotation() { return "std::string"; }
    static ordered_json schema() { return {{"type", "string"}}; }
    static std::string from_json(const json &j, const Path &at) {
        if (!j.is_string()) fail_type(at, "string", j);
        return j.get_ref<const std::string &>();
    }
};

template <>
struct value_traits<json> {
    static constexpr bool supported = true;
    static std::string annotation() { return "json"; }
    static ordered_json schema() { return ordered_json::object(); }  // any value
    static json from_json(const json &j, const Path &) { return j; }
};

template <class T>
struct value_traits<std::vector<T>, std::enable_if_t<value_traits<T>::supported>> {
    static constexpr bool supported = true;
    static std::string annotation() { return "std::vector<" + value_traits<T>::annotation() + '>'; }
    static ordered_json schema() { return {{"type", "array"}, {"items", value_traits<T>::schema()}}; }
    static std::vector<T> from_json(const json &j, const Path &at) {
        if (!j.is_array()) fail_type(at, "array", j);
        std::vector<T> out;
        out.reserve(j.size());
        std::size_t i = 0;
        for (const auto &element : j) {
            const Path here{&at, {}, i++, nullptr};
            out.push_back(value_traits<T>::from_json(element, here));
        }
        return out;
    }
};

template <class T>
struct value_traits<std::map<std::string, T>, std::enable_if_t<value_traits<T>::supported>> {
    static constexpr bool supported = true;
    static std::string annotation() { return "std::map<std::string, " + value_traits<T>::annotation() + '>'; }
    static ordered_json schema() { return {{"type", "object"}, {"additionalProperties", value_traits<T>::schema()}}; }
    static std::map<std::string, T> from_json(const json &j, const Path &at) {
        if (!j.is_object()) fail_type(at, "object", j);
        std::map<std::string, T> out;
        for (const auto &[key, value] : j.items()) {
            const Path here{&at, {}, 0, &key};
            out.emplace(key, value_traits<T>::from_json(value, here));
        }
        return out;
    }
};

template <class T>
struct value_traits<std::optional<T>, std::enable_if_t<value_traits<T>::supported>> {
    static constexpr bool supported = true;
    static std::string annotation() { return "std::optional<" + value_traits<T>::annotation() + '>'; }
    static ordered_json schema() {
        ordered_json inner = value_traits<T>::schema();
        if (inner.empty()) return inner;  // "any value" already admits null
        return {{"anyOf", ordered_json::array({std::move(inner), {{"type", "null"}}})}};
    }
    static std::optional<T> from_json(const json &j, const Path &at) {
        if (j.is_null()) return std::nullopt;
        return value_traits<T>::from_json(j, at);
    }
};

// Any other class type nlohmann can read (a user struct with from_json, a
// std::set, ...): converted by nlohmann, described loosely.
// (Containers described above are excluded so their element checks and
// messages stay ours.)
// clang-format 14 mangles this C++20 construct.
// clang-format off
template <class T>
inline constexpr bool nlohmann_readable_v =
    std::is_class_v<T> && std::is_default_constructible_v<T> && !std::is_same_v<T, std::string> &&
    !std::is_same_v<T, std::string_view> &&  // would point into the params text: take std::string
    !std::is_same_v<T, json> && !is_container_we_describe<T>::value &&
    requires(const json &j) { j.template get<T>(); };
// clang-format on

template <class T>
struct value_traits<T, std::enable_if_t<nlohmann_readable_v<T>>> {
    static constexpr bool supported = true;
    static std::string annotation() { return demangle(typeid(T).name()); }
    static ordered_json schema() { return ordered_json::object(); }
    static T from_json(const json &j, const Path &at) {
        try {
            return j.get<T>();
        } catch (const json::exception &e) {
            fail(at, e.what());
        }
    }
};

}  // namespace detail
}  // namespace taskhost
