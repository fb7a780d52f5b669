// Fixture for the `crash` scenario of taskhost-bench (process isolation): a
// task that stamps the time and then segfaults its worker, so the driver can
// time crash → failure seen by a ?wait client, and crash → replacement worker
// idle. Named after its file like bench_plugin (c0.so → plugin "c0", tasks
// c0_ok and c0_crash): two crashes quarantine a plugin version (its content
// hash), so the driver crashes each of several copies, each with its own
// trailer bytes, once.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <taskhost/sdk.hpp>

#include "plugin_name_from_file.hpp"

using taskhost::json;
using namespace taskhost;

extern "C" TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void);

namespace {

const std::string &prefix() {
    static const std::string p =
        bench_fixture::plugin_name_from_file(reinterpret_cast<const void *>(&taskhost_plugin_v1), "crash");
    return p;
}

json ok() { return {{"ok", true}}; }

// Writes "<CLOCK_MONOTONIC ns> <pid>\n" to `stamp_file`, then segfaults.
// CLOCK_MONOTONIC is system-wide on Linux, so the driver can subtract it
// from its own readings. A plain write(2) is visible to other processes at
// once (page cache); no fsync needed.
__attribute__((no_sanitize("undefined"))) json crash(std::string stamp_file) {
    char line[64];
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const long long ns = static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
    const int len = std::snprintf(line, sizeof line, "%lld %d\n", ns, static_cast<int>(::getpid()));
    const int fd = ::open(stamp_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        [[maybe_unused]] ssize_t w = ::write(fd, line, static_cast<size_t>(len));
        ::close(fd);
    }
    volatile int *nowhere = nullptr;
    *nowhere = 1;
    return nullptr;
}

}  // namespace

TASKHOST_PLUGIN(prefix(), "1.0.0", task(prefix() + "_ok", ok).doc("Returns at once (starts a worker)."),
                task(prefix() + "_crash", crash)
                    .doc("Stamps CLOCK_MONOTONIC and its pid into stamp_file, then segfaults.")
                    .params("stamp_file"));
