// Data at rest: the files the host creates (the database, its -wal and -shm,
// the crash record) are 0600 by default and follow --umask; a database
// folder that other users may read or write is warned about at start-up.
#include "test_util.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdlib>
#include <optional>

using namespace th_test;

namespace {

// The permission bits of `path`; -1 if it does not exist.
int mode_of(const fs::path &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return -1;
    return static_cast<int>(st.st_mode & 07777);
}

std::string octal(int mode) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", mode);
    return buf;
}

// The database and its -wal and -shm files, once they all exist (a job run
// first, so the WAL has been written).
void check_db_files(Service &svc, int expected) {
    run_task(svc.cli(), "greet_user", {{"name", "at rest"}});
    const fs::path db = svc.db_path();
    for (const fs::path &file : {db, fs::path(db.string() + "-wal"), fs::path(db.string() + "-shm")}) {
        CAPTURE(file);
        REQUIRE(eventually([&] { return fs::exists(file); }));
        CHECK(octal(mode_of(file)) == octal(expected));
    }
}

// Kills the host with a fatal signal (its crash handler writes the record
// beside the database) and returns the record's mode.
int crash_record_mode(Service &svc) {
    svc.host().send_signal(SIGSEGV);
    int status = 0;
    REQUIRE(svc.host().wait_exit(std::chrono::seconds(20), &status));
    CHECK(WIFSIGNALED(status));
    const fs::path record = svc.db_path() + ".crash";
    REQUIRE(fs::exists(record));
    return mode_of(record);
}

}  // namespace

TEST_SUITE("data at rest") {

TEST_CASE("by default the database, -wal, -shm and the crash record are 0600") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db());
    check_db_files(svc, 0600);
    CHECK(octal(crash_record_mode(svc)) == "0600");
}

TEST_CASE("--umask 027 makes the database files 0640; the crash record stays 0600 whatever the umask") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db().flags({"--umask", "027"}));
    check_db_files(svc, 0640);
    CHECK(octal(crash_record_mode(svc)) == "0600");
}

TEST_CASE("TASKHOST_UMASK is read too") {
    struct Env {
        Env() { ::setenv("TASKHOST_UMASK", "027", 1); }
        ~Env() { ::unsetenv("TASKHOST_UMASK"); }
    };
    std::optional<Service> svc;
    {
        Env env;  // the host started now inherits it
        svc.emplace(ServiceOptions::examples({"demo.so"}).with_file_db());
    }
    check_db_files(*svc, 0640);
}

TEST_CASE("a mask that is not octal, or above 0777, refuses to start") {
    for (const char *bad : {"089", "1777", "-1", "0x1f", "7a"}) {
        CAPTURE(bad);
        int status = 0;
        std::string out;
        std::tie(status, out) = run_host_to_exit(std::string("--umask ") + bad);
        CHECK(status != 0);
        CHECK_CONTAINS(out, "umask");
    }
    const std::string cmd = "TASKHOST_UMASK=9 timeout 30 " + std::string(TASKHOST_BINARY) +
                            " --port 0 --db :memory: --plugins /nonexistent >/dev/null 2>&1";
    const int status = std::system(cmd.c_str());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) != 0);
    CHECK(WEXITSTATUS(status) != 124);  // refused, not timed out serving
}

TEST_CASE("a database folder other users may read is warned about, naming it and its mode") {
    TempDir tmp;
    const fs::path data = tmp / "data";
    fs::create_directories(data);
    fs::permissions(data, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    assemble_plugins(tmp / "plugins", {example_plugin("demo.so")});
    HostOptions options;
    options.plugins_dir = tmp / "plugins";
    options.db = (data / "taskhost.db").string();
    options.work_dir = tmp.path();
    HostProcess host(options);
    CHECK_CONTAINS(host.stderr_text(), "the database folder " + data.string() + " has mode 0755");
    // The files in it are still the host's alone.
    CHECK(octal(mode_of(data / "taskhost.db")) == "0600");
}

TEST_CASE("a private database folder, or a memory database, gets no warning") {
    Service file_db(ServiceOptions::examples({"demo.so"}).with_file_db());
    Service memory_db(ServiceOptions::examples({"demo.so"}));
    CHECK(get_json(file_db.cli(), "/health")["status"] == "healthy");
    CHECK(get_json(memory_db.cli(), "/health")["status"] == "healthy");
    CHECK(!contains(file_db.host().stderr_text(), "the database folder"));
    CHECK(!contains(memory_db.host().stderr_text(), "the database folder"));
}

TEST_CASE("a database file made before with a more open mode is warned about") {
    Service svc(ServiceOptions::examples({"demo.so"}).with_file_db());
    run_task(svc.cli(), "greet_user", {{"name", "x"}});
    svc.host().stop();
    fs::permissions(svc.db_path(),
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    svc.restart();
    CHECK(get_json(svc.cli(), "/health")["status"] == "healthy");
    CHECK_CONTAINS(svc.host().stderr_text(), "the database file " + svc.db_path() + " has mode 0644");
}

}  // TEST_SUITE("data at rest")
