// Fixture plugin "count_mismatch": names two parameters for a function that
// has one. It compiles (chained .param() cannot be counted at compile time;
// .params("a", "b") would be a compile error) and the descriptor's
// declaration_error reports the mismatch, so the host refuses the plugin
// with "invalid declaration: " and that message.
#include <taskhost/sdk.hpp>

using taskhost::json;

namespace {
json one(int a) { return {{"a", a}}; }
}  // namespace

TASKHOST_PLUGIN("count_mismatch", "1.0.0",
                task("count_mismatch", one).doc("Declares one name too many.").param("a").param("b"));
