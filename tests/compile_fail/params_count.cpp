// Must not compile: .params() gives three names to a function with two
// caller parameters (Context is injected, never named). The error says
// params_count_mismatch<names<3>, caller_parameters<2>>.
#include <taskhost/sdk.hpp>

using taskhost::json;
using namespace taskhost;

json add(Context &, int a, int b) { return a + b; }

TASKHOST_PLUGIN("compile_fail", "1.0.0", task("add", add).params("a", "b", "c"));
