// Example plugin "math": tasks with required integer parameters.
#include <taskhost/sdk.hpp>

#include <cstdint>

using taskhost::json;
using namespace taskhost;

namespace {

// 64-bit arithmetic: two ints can neither overflow a sum nor a product there.
json add(int a, int b) { return {{"result", std::int64_t{a} + b}}; }

json multiply(int a, int b) { return {{"result", std::int64_t{a} * b}}; }

json multiply_numbers(int a, int b) { return {{"result", std::int64_t{a} * b}, {"a", a}, {"b", b}}; }

}  // namespace

TASKHOST_PLUGIN(
    "math", "1.0.0", task("add", add).doc("Add two numbers.").tags({"math"}).params("a", "b"),
    task("multiply", multiply).doc("Synchronous task that multiplies numbers.").tags({"math"}).params("a", "b"),
    task("multiply_numbers", multiply_numbers)
        .doc("Multiply two numbers and echo the operands.")
        .tags({"demo", "math"})
        .params("a", "b"));
