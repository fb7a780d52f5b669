// JsonSchema: which declared schemas the host refuses, and the one-line
// reasons it gives for params that violate a schema (in the SDK's words).
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "schema/json_schema.hpp"

using namespace taskhost;
using nlohmann::json;
using schema::JsonSchema;

namespace {

std::string compile_error(const std::string &text) {
    auto compiled = JsonSchema::compile(text);
    if (compiled) return "(compiled)";
    CHECK(compiled.error().kind == ErrorKind::invalid);
    return compiled.error().message;
}

// What check_params says of `params` ("" when they pass).
std::string problem(const JsonSchema &schema, const json &params) {
    auto checked = schema.check_params(params);
    if (checked) return "";
    CHECK(checked.error().kind == ErrorKind::invalid);
    return checked.error().message;
}

// The SDK's schema for (int8_t a, std::vector<std::string> xs = {},
// std::map<std::string, double> m = {}, std::optional<int> o = null, json j = null).
const char *const sdk_style = R"({"type":"object","properties":{
    "a":{"type":"integer","minimum":-128,"maximum":127},
    "xs":{"type":"array","items":{"type":"string"},"default":[]},
    "m":{"type":"object","additionalProperties":{"type":"number"},"default":{}},
    "o":{"anyOf":[{"type":"integer"},{"type":"null"}],"default":null},
    "j":{"default":null}},
    "required":["a"],"additionalProperties":false})";

}  // namespace

TEST_SUITE("json schema") {

TEST_CASE("json schema: text that is not JSON, or not a JSON Schema, is refused with why") {
    CHECK(compile_error(sdk_style) == "(compiled)");
    CHECK(compile_error("{}") == "(compiled)");
    CHECK(compile_error("true") == "(compiled)");                // draft-07: a boolean is a schema
    CHECK(compile_error(R"({"x-vendor": 1})") == "(compiled)");  // unknown keywords are allowed

    CHECK(compile_error(R"({"type": "object",)").starts_with("not valid JSON: parse error at line 1, column 19"));
    CHECK(compile_error("").starts_with("not valid JSON: "));
    CHECK(compile_error(R"({"type": 5})") == "not a valid JSON Schema: JSON value is not a string.");
    CHECK(compile_error(R"({"properties": []})") == "not a valid JSON Schema: JSON value is not an object.");
    CHECK(compile_error(R"({"type": "objekt"})") == "not a valid JSON Schema: Unrecognised JSON type name 'objekt'");
    CHECK(compile_error(R"({"required": "a"})") == "not a valid JSON Schema: JSON value is not an array.");
    CHECK(compile_error(R"({"properties": {"a": 5}})")
              .starts_with("not a valid JSON Schema: Expected node at "
                           "/properties/a to contain schema object"));
    CHECK(compile_error("5").starts_with("not a valid JSON Schema: "));
    CHECK(compile_error(R"({"$ref": "#/definitions/missing"})").starts_with("not a valid JSON Schema: "));
    CHECK(compile_error(R"({"$ref": "http://example.com/remote.json"})").starts_with("not a valid JSON Schema: "));
}

TEST_CASE("json schema: violations are one line naming the parameter, as the SDK words them") {
    auto compiled = JsonSchema::compile(sdk_style);
    REQUIRE(compiled);
    const JsonSchema &s = **compiled;

    CHECK(problem(s, {{"a", 1}}) == "");
    CHECK(problem(s, {{"a", 1}, {"xs", {"p", "q"}}, {"m", {{"k", 1.5}}}, {"o", nullptr}, {"j", {1, 2}}}) == "");
    CHECK(problem(s, {{"a", 3.0}}) == "");  // an integer for JSON Schema (draft-07) and the SDK
    CHECK(problem(s, {{"a", 3.0}, {"xs", {1.0}}}) == "parameter 'xs'[0]: expected string, got number");

    CHECK(problem(s, json::array()) == "params must be a JSON object");
    CHECK(problem(s, {{"anything", 1}}) == "unknown parameter 'anything'");
    CHECK(problem(s, json::object()) == "missing required parameter 'a'");
    CHECK(problem(s, {{"a", "x"}}) == "parameter 'a': expected integer, got string");
    CHECK(problem(s, {{"a", 1.5}}) == "parameter 'a': expected integer, got number");
    CHECK(problem(s, {{"a", 200}}) == "parameter 'a': expected number less than or equal to 127.000000");
    CHECK(problem(s, {{"a", 1}, {"xs", {"p", 3}}}) == "parameter 'xs'[1]: expected string, got integer");
    CHECK(problem(s, {{"a", 1}, {"xs", "p"}}) == "parameter 'xs': expected array, got string");
    CHECK(problem(s, {{"a", 1}, {"m", {{"k", "v"}}}}) == "parameter 'm'[\"k\"]: expected number, got string");
    CHECK(problem(s, {{"a", 1}, {"o", "s"}}) == "parameter 'o': expected integer or null, got string");
}

TEST_CASE("json schema: a schema that is not about an object still checks the value") {
    auto compiled = JsonSchema::compile(R"({"type":"object","patternProperties":{"^n_":{"type":"number"}},
                                           "additionalProperties":false})");
    REQUIRE(compiled);
    CHECK(problem(**compiled, {{"n_1", 2}}) == "");
    const std::string other = problem(**compiled, {{"other", 2}});
    CHECK(other.find("'other'") != std::string::npos);
    CHECK(other.find('\n') == std::string::npos);
}

}  // TEST_SUITE("json schema")
