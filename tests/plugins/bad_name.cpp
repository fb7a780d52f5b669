// Fixture plugin "bad_name": a task name with a space, which is not URL-safe.
// The host must refuse the plugin.
#include <taskhost/sdk.hpp>

using taskhost::json;

namespace {
json bad() { return {{"ok", true}}; }
}  // namespace

TASKHOST_PLUGIN("bad_name", "1.0.0", task("bad name", bad).doc("Its name is not URL-safe."));
