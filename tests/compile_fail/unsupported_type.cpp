// Must not compile: the second parameter's type cannot be read from JSON.
// The error names it: unsupported_parameter<position<2>, Widget>.
#include <taskhost/sdk.hpp>

using taskhost::json;

struct Widget {
    explicit Widget(int) {}
};

json use(int a, Widget) { return a; }

TASKHOST_PLUGIN("compile_fail", "1.0.0", task("use", use).params("a", "w"));
