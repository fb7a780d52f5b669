// Fixture plugin "crashers": tasks that end the process they run in, each a
// different way. The host cannot survive them in-process; it must record
// which job did it, fail that job at its next start and never run it again.
#include <taskhost/sdk.hpp>

#include <unistd.h>

#include <cstdlib>

using namespace taskhost;

namespace {

// UBSan would stop the process at the null store before the fault happens;
// the test is about the real signal.
__attribute__((no_sanitize("undefined"))) json segfault() {
    volatile int *nowhere = nullptr;
    *nowhere = 1;
    return nullptr;
}

json abort_now() { std::abort(); }

json exit_now(int code) { std::exit(code); }

json underscore_exit(int code) { ::_exit(code); }

// Deep enough for any stack; the volatile buffer keeps each frame real and
// the work after the call keeps the compiler from making it a loop.
int recurse(int depth) {
    if (depth == -1) return 0;  // never: keeps the recursion from looking endless to the compiler
    volatile char frame[1024];
    frame[0] = static_cast<char>(depth);
    return recurse(depth + 1) + frame[0];
}
json stack_overflow() { return recurse(0); }

}  // namespace

TASKHOST_PLUGIN("crashers", "1.0.0", task("segfault", segfault), task("abort_now", abort_now),
                task("exit_now", exit_now).params("code"), task("underscore_exit", underscore_exit).params("code"),
                task("stack_overflow", stack_overflow));
