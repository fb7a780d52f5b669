#include "http/openapi.hpp"

#include <vector>

#include <nlohmann/json.hpp>

namespace taskhost::http {

namespace {

using ojson = nlohmann::ordered_json;  // keeps the document's authored order

constexpr std::string_view kComponentRef = "#/components/schemas/";

// Points every reference to a component at #/$defs/NAME instead, and
// collects the names so that their schemas can come along.
void relocate_refs(ojson &node, std::vector<std::string> &referenced) {
    if (node.is_object()) {
        for (auto &[key, value] : node.items()) {
            if (key == "$ref" && value.is_string()) {
                std::string ref = value.get<std::string>();
                if (ref.rfind(kComponentRef, 0) == 0) {
                    std::string name = ref.substr(kComponentRef.size());
                    value = "#/$defs/" + name;
                    referenced.push_back(std::move(name));
                }
            } else {
                relocate_refs(value, referenced);
            }
        }
    } else if (node.is_array()) {
        for (auto &item : node) relocate_refs(item, referenced);
    }
}

// A self-contained JSON Schema of component `name`, or of a list of them,
// with every component it uses under $defs (as pydantic writes them).
std::string standalone_schema(const ojson &schemas, const std::string &name, bool list) {
    ojson defs = ojson::object();
    std::vector<std::string> todo{name};
    while (!todo.empty()) {
        std::string next = std::move(todo.back());
        todo.pop_back();
        if (defs.contains(next)) continue;
        ojson schema = schemas.at(next);
        relocate_refs(schema, todo);
        defs[next] = std::move(schema);
    }
    ojson out = ojson::object();
    if (list) {
        out["$defs"] = std::move(defs);
        out["type"] = "array";
        out["items"] = ojson{{"$ref", "#/$defs/" + name}};
        return out.dump();
    }
    out["title"] = name;
    for (auto &[key, value] : defs[name].items()) out[key] = value;
    defs.erase(name);
    if (!defs.empty()) out["$defs"] = std::move(defs);
    return out.dump();
}

// Every operation needs the key but those on exempt paths; the secured
// ones may answer 401.
void require_api_key(ojson &doc, const AuthOptions &auth) {
    doc["components"]["securitySchemes"]["ApiKey"] = ojson{{"type", "apiKey"}, {"in", "header"}, {"name", auth.header}};
    doc["components"]["responses"]["Unauthorized"] =
        ojson{{"description", "The API key is missing or not one of the host's"},
              {"headers", {{"WWW-Authenticate", {{"schema", {{"type", "string"}}}}}}},
              {"content", {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
    doc["security"] = ojson::array({ojson{{"ApiKey", ojson::array()}}});
    for (auto &[path, item] : doc["paths"].items()) {
        for (auto &[method, op] : item.items()) {
            if (auth.is_exempt(path)) op["security"] = ojson::array();
            else op["responses"]["401"] = ojson{{"$ref", "#/components/responses/Unauthorized"}};
        }
    }
}

// What the browser rules (browser_guard.hpp) may answer: every operation
// 421 for a Host that is not the host's; without API keys, a state-changing
// one 403 for a foreign Origin, and one that takes a body 415 when it is
// not JSON.
void declare_browser_rules(ojson &doc, const AuthOptions &auth) {
    auto problem_response = [](std::string description) {
        return ojson{
            {"description", std::move(description)},
            {"content", {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
    };
    ojson &responses = doc["components"]["responses"];
    responses["MisdirectedRequest"] = problem_response(
        "The Host header names none of the host's names (loopback names, `--host`, `--allowed-hosts`)");
    if (!auth.enabled()) {
        responses["CrossOrigin"] = problem_response(
            "The request comes from a web page of another origin (`Origin` is neither the host's own nor one of "
            "`--cors-origins`)");
        responses["NotJson"] = problem_response("The body is not declared `application/json` (`Content-Type`)");
    }
    for (auto &[path, item] : doc["paths"].items()) {
        for (auto &[method, op] : item.items()) {
            ojson &r = op["responses"];
            r["421"] = ojson{{"$ref", "#/components/responses/MisdirectedRequest"}};
            if (auth.enabled()) continue;
            if (method == "post" || method == "put" || method == "patch" || method == "delete")
                r["403"] = ojson{{"$ref", "#/components/responses/CrossOrigin"}};
            if (method == "post" || method == "put" || method == "patch")
                r["415"] = ojson{{"$ref", "#/components/responses/NotJson"}};
        }
    }
}

}  // namespace

ApiDocument::ApiDocument(const ServiceIdentity &identity, const AuthOptions &auth) {
    ojson doc = ojson::parse(openapi_source());
    ojson &info = doc["info"];
    info["title"] = identity.display_name;
    info["version"] = identity.version;
    info["summary"] = identity.summary;
    info["description"] = identity.description;
    declare_browser_rules(doc, auth);
    if (auth.enabled()) require_api_key(doc, auth);
    const ojson &schemas = doc.at("components").at("schemas");
    job_list_schema_ = standalone_schema(schemas, "JobRecord", true);
    artifact_schema_ = standalone_schema(schemas, "ArtifactOut", false);
    app_list_schema_ = standalone_schema(schemas, "AppInfo", true);
    openapi_ = doc.dump();
}

}  // namespace taskhost::http
