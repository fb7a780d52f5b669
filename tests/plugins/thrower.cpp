// Fixture plugin "thrower": exceptions thrown from known lines a few calls
// deep, for the traceback tests. `lines` answers where each throw is, so the
// tests need not know this file's layout. thrower_stripped.so is this
// plugin with its debug info removed.
#include <taskhost/sdk.hpp>

#include <locale>
#include <stdexcept>
#include <string>
#include <vector>

using namespace taskhost;

namespace {

constexpr int deep_line = __LINE__ + 2;
[[gnu::noinline]] void fail_deep(int depth) {
    if (depth > 0) throw std::runtime_error("boom at depth " + std::to_string(depth));
}
[[gnu::noinline]] void middle(int depth) {
    fail_deep(depth);
    asm volatile("");  // keeps the call from becoming a tail call (a frame of its own)
}
[[gnu::noinline]] void outer(int depth) {
    middle(depth + 1);
    asm volatile("");
}

json deep() {
    outer(1);
    return nullptr;
}

constexpr int recovered_line = __LINE__ + 2;
[[gnu::noinline]] void fail_recoverably() {
    throw std::invalid_argument("handled inside the task");
}
constexpr int second_line = __LINE__ + 2;
[[gnu::noinline]] void fail_for_good() {
    throw std::logic_error("the second one");
}

// Throws and catches one exception, then throws another: the report is of
// the second.
json caught_then_thrown() {
    try {
        fail_recoverably();
    } catch (const std::invalid_argument &) {
    }
    fail_for_good();
    return nullptr;
}

// std::vector::at throws through libstdc++'s std::__throw_out_of_range_fmt.
constexpr int vector_at_line = __LINE__ + 2;
[[gnu::noinline]] int read_past_end(const std::vector<int> &v, std::size_t i) {
    return v.at(i);
}

json vector_at() {
    const std::vector<int> v(3, 7);
    return read_past_end(v, 5);
}

// std::locale's constructor is compiled into libstdc++.so: a throw no hook
// sees (std::string::at, by contrast, is instantiated in the plugin).
[[gnu::noinline]] void open_missing_locale() {
    const std::locale missing("taskhost-no-such-locale");
    asm volatile("");
}

json library_throw() {
    open_missing_locale();
    return nullptr;
}

json lines() {
    return {{"deep", deep_line},
            {"recovered", recovered_line},
            {"second", second_line},
            {"vector_at", vector_at_line}};
}

}  // namespace

TASKHOST_PLUGIN("thrower", "1.0.0",
                task("deep", deep).doc("Throws std::runtime_error three calls deep."),
                task("caught_then_thrown", caught_then_thrown).doc("Catches one exception, then throws another."),
                task("vector_at", vector_at).doc("std::vector::at past the end."),
                task("library_throw", library_throw).doc("A throw inside libstdc++.so (std::locale)."),
                task("lines", lines).doc("The source line of each throw."));
