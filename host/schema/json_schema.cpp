#include "schema/json_schema.hpp"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

// valijson reports a schema it cannot use by throwing.
#define VALIJSON_USE_EXCEPTIONS 1
// The SDK's names for JSON kinds, so a 400 reads the same with or without validate().
#include <taskhost/detail/convert.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "util/json_text.hpp"

namespace taskhost::schema {

using nlohmann::json;

struct JsonSchema::Compiled {
    json document;  // as declared: messages look up what a place expects
    valijson::Schema schema;
};

namespace {

Error invalid(std::string reason) { return fail(ErrorKind::invalid, std::move(reason)); }

bool satisfies(const json &value, const std::string &type) {
    if (type == "null") return value.is_null();
    if (type == "boolean") return value.is_boolean();
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "number") return value.is_number();
    if (type == "integer") {
        if (value.is_number_integer()) return true;
        if (!value.is_number_float()) return false;
        const double d = value.get<double>();
        return std::isfinite(d) && std::trunc(d) == d;  // 3.0 is an integer for JSON Schema
    }
    return true;  // not a type name we know: valijson decides
}

// The types a (sub)schema allows, when it says so plainly: "type", or an
// anyOf/oneOf of plain types (how std::optional<T> is described). Empty
// when it does not.
std::vector<std::string> plain_types(const json *node) {
    std::vector<std::string> out;
    if (node == nullptr || !node->is_object()) return out;
    if (auto t = node->find("type"); t != node->end()) {
        if (t->is_string()) out.push_back(t->get<std::string>());
        else if (t->is_array())
            for (const auto &one : *t)
                if (one.is_string()) out.push_back(one.get<std::string>());
        return out;
    }
    for (const char *keyword : {"anyOf", "oneOf"}) {
        auto alternatives = node->find(keyword);
        if (alternatives == node->end() || !alternatives->is_array()) continue;
        for (const auto &alternative : *alternatives) {
            std::vector<std::string> more = plain_types(&alternative);
            if (more.empty()) return {};
            out.insert(out.end(), more.begin(), more.end());
        }
        return out;
    }
    return out;
}

// Where valijson's error is, as the SDK names places ("parameter 'a'[1]"),
// with the value there and the subschema that applies to it (if it can be
// found by properties / additionalProperties / items alone).
struct Place {
    std::string name;
    const json *value = nullptr;
    const json *schema = nullptr;
};

Place place_of(const std::vector<std::string> &context, const json &params, const json &document) {
    Place at{"", &params, &document};
    // context: "<root>", then one "[key]" or "[index]" per step.
    for (size_t i = 1; i < context.size() && at.value != nullptr; ++i) {
        const std::string &token = context[i];
        const std::string step = token.size() >= 2 && token.front() == '[' && token.back() == ']'
                                     ? token.substr(1, token.size() - 2)
                                     : token;
        const json *schema = at.schema;
        at.schema = nullptr;
        if (at.value->is_object()) {
            auto it = at.value->find(step);
            at.name += at.name.empty() ? "parameter '" + step + "'" : "[" + json(step).dump() + "]";
            at.value = it == at.value->end() ? nullptr : &*it;
            if (schema != nullptr && schema->is_object()) {
                auto properties = schema->find("properties");
                if (properties != schema->end() && properties->is_object() && properties->contains(step))
                    at.schema = &(*properties)[step];
                else if (auto extra = schema->find("additionalProperties");
                         extra != schema->end() && extra->is_object())
                    at.schema = &*extra;
            }
        } else if (at.value->is_array()) {
            size_t index = 0;
            try {
                index = std::stoul(step);
            } catch (const std::exception &) {
                at.value = nullptr;
                break;
            }
            at.name += "[" + step + "]";
            at.value = index < at.value->size() ? &(*at.value)[index] : nullptr;
            if (schema != nullptr && schema->is_object()) {
                auto items = schema->find("items");
                if (items != schema->end() && items->is_object()) at.schema = &*items;
                else if (items != schema->end() && items->is_array() && index < items->size())
                    at.schema = &(*items)[index];
            }
        } else {
            at.value = nullptr;
        }
    }
    return at;
}

// valijson's sentence as the tail of one line: "Expected ... 10." ->
// "expected ... 10".
std::string as_clause(std::string text) {
    while (!text.empty() && (text.back() == '.' || text.back() == ' ')) text.pop_back();
    if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    return text;
}

bool is_integral_float(const json &j) {
    if (!j.is_number_float()) return false;
    const double d = j.get<double>();
    return std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9.2e18;
}

bool has_integral_float(const json &j) {
    if (is_integral_float(j)) return true;
    if (j.is_structured())
        for (const auto &element : j)
            if (has_integral_float(element)) return true;
    return false;
}

// Draft-07 counts 3.0 as an integer (as the SDK does); valijson does not.
json with_integral_floats_as_integers(const json &j) {
    if (is_integral_float(j)) return static_cast<int64_t>(j.get<double>());
    if (j.is_object()) {
        json out = json::object();
        for (const auto &[key, value] : j.items()) out[key] = with_integral_floats_as_integers(value);
        return out;
    }
    if (j.is_array()) {
        json out = json::array();
        for (const auto &element : j) out.push_back(with_integral_floats_as_integers(element));
        return out;
    }
    return j;
}

// The SDK's own words for the top level of a params object: checked before
// valijson, which would say the same less plainly.
std::string top_level_problem(const json &params, const json &document) {
    if (!document.is_object()) return "";
    const bool wants_object = document.value("type", json()) == "object" || document.contains("properties");
    if (!wants_object) return "";
    if (!params.is_object()) return "params must be a JSON object";
    const json properties = document.value("properties", json::object());
    if (document.value("additionalProperties", json(true)) == json(false) && !document.contains("patternProperties")) {
        for (const auto &[key, value] : params.items())
            if (!properties.is_object() || !properties.contains(key)) return "unknown parameter '" + key + "'";
    }
    if (auto required = document.find("required"); required != document.end() && required->is_array()) {
        for (const auto &name : *required)
            if (name.is_string() && !params.contains(name.get<std::string>()))
                return "missing required parameter '" + name.get<std::string>() + "'";
    }
    return "";
}

}  // namespace

JsonSchema::JsonSchema(std::unique_ptr<Compiled> compiled) : compiled_(std::move(compiled)) {}
JsonSchema::~JsonSchema() = default;

Result<std::shared_ptr<const JsonSchema>> JsonSchema::compile(std::string_view text) {
    // valijson walks a schema recursively: deep enough, it would exhaust
    // the stack of the host reading it.
    if (json_text::nesting_exceeds(text, max_schema_depth))
        return invalid("nested deeper than " + std::to_string(max_schema_depth) + " levels");
    auto compiled = std::make_unique<Compiled>();
    try {
        compiled->document = json::parse(text);
    } catch (const json::parse_error &e) {
        // "[json.exception.parse_error.101] parse error at ...": the tail says where.
        const std::string what = e.what();
        const auto at = what.find("parse error");
        return invalid("not valid JSON: " + (at == std::string::npos ? what : what.substr(at)));
    }
    try {
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        valijson::adapters::NlohmannJsonAdapter adapter(compiled->document);
        parser.populateSchema(adapter, compiled->schema);
    } catch (const std::exception &e) {
        return invalid(std::string("not a valid JSON Schema: ") + e.what());
    }
    return std::shared_ptr<const JsonSchema>(new JsonSchema(std::move(compiled)));
}

Result<void> JsonSchema::check_params(const json &params) const {
    const json &document = compiled_->document;
    if (std::string problem = top_level_problem(params, document); !problem.empty()) return invalid(problem);
    valijson::ValidationResults results;
    const auto satisfied = [&](const json &value) {
        results = valijson::ValidationResults();
        valijson::Validator validator;
        valijson::adapters::NlohmannJsonAdapter target(value);
        return validator.validate(compiled_->schema, target, &results);
    };
    try {
        if (satisfied(params)) return {};
        // Rarely needed, so only then: the copy with 3.0 read as 3.
        if (has_integral_float(params) && satisfied(with_integral_floats_as_integers(params))) return {};
    } catch (const std::exception &e) {  // e.g. a "pattern" std::regex cannot compile
        return invalid(std::string("params could not be checked against the task's schema: ") + e.what());
    }
    if (results.numErrors() == 0) return invalid("params do not match the task's schema");
    // Errors come innermost first; the ones at the same place as the first
    // end with their summary (an anyOf's "none matched").
    auto it = results.begin();
    const std::vector<std::string> &context = it->context;
    std::string description = it->description;
    for (; it != results.end() && it->context == context; ++it) description = it->description;

    const Place at = place_of(context, params, document);
    std::string what = as_clause(description);
    if (at.value != nullptr) {
        const std::vector<std::string> types = plain_types(at.schema);
        bool allowed = types.empty();
        for (const auto &type : types) allowed = allowed || satisfies(*at.value, type);
        if (!allowed) {
            what = "expected ";
            for (size_t i = 0; i < types.size(); ++i) what += (i ? " or " : "") + types[i];
            what += std::string(", got ") + taskhost::detail::kind_of(*at.value);
        }
    }
    return invalid(at.name.empty() ? what : at.name + ": " + what);
}

}  // namespace taskhost::schema
