// The OpenAPI 3.1 document of the HTTP API (host/http/openapi.json, compiled
// in), and the JSON Schemas the $schema routes answer, cut from its
// components so that the two can never disagree.
#pragma once

#include <string>
#include <string_view>

#include "http/auth.hpp"

namespace taskhost::http {

// What GET /api/v1/info says this service is; the document's info block too.
struct ServiceIdentity {
    std::string display_name;
    std::string version;
    std::string summary;
    std::string description;
};

class ApiDocument {
public:
    // Parses the compiled-in document (it is part of the build, so a
    // malformed one fails the first test, not a user), fills in `identity`
    // and, when API keys are required, says so (securitySchemes, 401s).
    ApiDocument(const ServiceIdentity &identity, const AuthOptions &auth);

    const std::string &openapi_json() const { return openapi_; }
    // GET /api/v1/jobs/$schema: the job list.
    const std::string &job_list_schema() const { return job_list_schema_; }
    // GET /api/v1/artifacts/$schema: one artifact.
    const std::string &artifact_schema() const { return artifact_schema_; }
    // GET /api/v1/system/apps/$schema: the app list.
    const std::string &app_list_schema() const { return app_list_schema_; }

private:
    std::string openapi_;
    std::string job_list_schema_;
    std::string artifact_schema_;
    std::string app_list_schema_;
};

// The compiled-in text of openapi.json (generated from it by CMake).
std::string_view openapi_source();

}  // namespace taskhost::http
