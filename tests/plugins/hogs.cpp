// Fixture plugin "hogs": tasks that take more than their share (memory,
// CPU, threads that outlive them) and one that says which process runs it,
// for the process-isolation tests.
#include <taskhost/sdk.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using namespace taskhost;

namespace {

// Allocates and touches `mib` MiB, then lets it go.
json allocate(int mib) {
    std::vector<std::unique_ptr<char[]>> blocks;
    for (int i = 0; i < mib; ++i) {
        blocks.emplace_back(new char[1 << 20]);
        std::memset(blocks.back().get(), 1, 1 << 20);
    }
    return {{"allocated_mib", mib}};
}

// Burns CPU for `seconds` and never looks at cancellation.
json spin(double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    volatile unsigned long n = 0;
    while (std::chrono::steady_clock::now() < end) n = n + 1;
    return {{"spun", seconds}};
}

// Leaves a thread behind that outlives the task (and writes nothing).
json detach_thread() {
    std::thread([] {
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }).detach();
    return {{"pid", ::getpid()}};
}

json whoami() { return {{"pid", ::getpid()}, {"parent", ::getppid()}}; }

// Writes a row inside its Session, then dies before the SDK commits.
json crash_in_session(Session &session) {
    session.exec("CREATE TABLE IF NOT EXISTS hog_rows (v TEXT)");
    session.exec("INSERT INTO hog_rows (v) VALUES ('never committed')");
    std::abort();
}

json count_rows(Database &database) {
    database.exec("CREATE TABLE IF NOT EXISTS hog_rows (v TEXT)");
    return database.query("SELECT COUNT(*) AS rows FROM hog_rows").at(0);
}

}  // namespace

TASKHOST_PLUGIN("hogs", "1.0.0",
                task("allocate", allocate).doc("Allocates and touches MiB of memory.").tags({"testing"}).params("mib"),
                task("spin", spin).doc("Burns CPU, ignoring cancellation.").tags({"testing"}).params("seconds"),
                task("detach_thread", detach_thread).doc("Leaves a thread running.").tags({"testing"}),
                task("whoami", whoami).doc("The process that runs it.").tags({"testing"}),
                task("crash_in_session", crash_in_session).doc("Dies inside its Session.").tags({"testing"}),
                task("count_rows", count_rows).doc("Rows crash_in_session wrote.").tags({"testing"}));
