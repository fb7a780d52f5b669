// Fixture plugin "dup": declares `hello`, which demo.so already provides. The
// host must refuse this plugin (and keep demo's hello).
#include <taskhost/sdk.hpp>

using taskhost::json;

namespace {
json hello() { return {{"message", "Hello from dup!"}}; }
}  // namespace

TASKHOST_PLUGIN("dup", "1.0.0", task("hello", hello).doc("Collides with demo's hello.").tags({"demo"}));
