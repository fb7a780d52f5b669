// Fixture plugin "results": tasks whose results the host must refuse, and
// one it must take.
#include <taskhost/sdk.hpp>

#include <string>

using namespace taskhost;

namespace {

// A result of about `bytes` bytes.
json big_result(int bytes) { return {{"padding", std::string(static_cast<size_t>(bytes > 0 ? bytes : 0), 'x')}}; }

// A string that is not UTF-8: JSON cannot carry it.
json bad_utf8() { return {{"text", std::string("ok \xff\xfe bytes")}}; }

// An artifact of about `bytes` bytes.
json big_artifact(Artifacts &artifacts, int bytes) {
    return {{"artifact_id", artifacts.save(std::string(static_cast<size_t>(bytes > 0 ? bytes : 0), 'y'))}};
}

}  // namespace

TASKHOST_PLUGIN("results", "1.0.0", task("big_result", big_result).params("bytes").doc("Returns about `bytes` bytes."),
                task("bad_utf8", bad_utf8).doc("Returns a string with invalid UTF-8."),
                task("big_artifact", big_artifact).params("bytes").doc("Saves an artifact of about `bytes` bytes."));
