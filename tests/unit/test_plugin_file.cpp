// Reading plugin files: trust checks, ELF images that would fault inside
// the loader, sealed in-memory copies. (A file changing while it is read is
// an integration test: tests/integration/test_hostile.cpp.)
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "plugins/plugin_file.hpp"
#include "util/ulid.hpp"

using namespace taskhost;
using namespace taskhost::plugins;
namespace fs = std::filesystem;

namespace {

const fs::path examples = TASKHOST_PLUGIN_DIR;

std::string bytes_of(const fs::path &path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Scratch {
    fs::path dir = fs::temp_directory_path() / ("taskhost-plugin-file-test-" + new_ulid_string());
    Scratch() { fs::create_directories(dir); }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

struct ::stat with(uid_t uid, mode_t mode) {
    struct ::stat st {};
    st.st_uid = uid;
    st.st_mode = S_IFREG | mode;
    return st;
}

}  // namespace

TEST_CASE("plugin file: owned by the host's user or root, written by nobody else") {
    CHECK(check_trusted(with(::geteuid(), 0644), "file"));
    CHECK(check_trusted(with(0, 0755), "file"));
    Result<void> world = check_trusted(with(0, 0666), "file");
    REQUIRE_FALSE(world);
    CHECK(world.error().message ==
          "insecure file: writable by any user (mode 0666); pass --allow-insecure-plugins to load it anyway");
    Result<void> group = check_trusted(with(0, 0664), "file");
    REQUIRE_FALSE(group);
    CHECK(group.error().message ==
          "insecure file: writable by its group (mode 0664); pass --allow-insecure-plugins to load it anyway");
    const uid_t stranger = ::geteuid() == 4242 ? 4243 : 4242;
    Result<void> foreign = check_trusted(with(stranger, 0644), "file");
    REQUIRE_FALSE(foreign);
    CHECK(foreign.error().message.rfind("insecure file: owned by uid " + std::to_string(stranger), 0) == 0);
}

TEST_CASE("plugin file: read through one descriptor, refused if untrusted unless told otherwise") {
    Scratch s;
    const fs::path file = s.dir / "demo.so";
    fs::copy_file(examples / "demo.so", file);
    fs::permissions(file, fs::perms::all);
    Result<FileBytes> refused = read_plugin_file(file, false);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind == ErrorKind::invalid);
    Result<FileBytes> read = read_plugin_file(file, true);
    REQUIRE(read);
    CHECK(read->bytes == bytes_of(examples / "demo.so"));
    CHECK(read->fingerprint == fingerprint_of(file));
    // A folder is not a plugin file.
    Result<FileBytes> folder = read_plugin_file(s.dir, true);
    REQUIRE_FALSE(folder);
    CHECK(folder.error().message == "not a regular file");
}

TEST_CASE("plugin file: an ELF image cut short is refused before dlopen sees it") {
    const std::string whole = bytes_of(examples / "demo.so");
    CHECK(check_elf_image(whole));
    for (size_t size : {size_t{0}, size_t{10}, size_t{100}, whole.size() / 2, whole.size() - 1}) {
        CAPTURE(size);
        Result<void> cut = check_elf_image(std::string_view(whole).substr(0, size));
        REQUIRE_FALSE(cut);
        CHECK(cut.error().message.rfind("not a loadable shared library: ", 0) == 0);
    }
    CHECK(check_elf_image(std::string(1000, 'x')).error().message == "not a loadable shared library: not an ELF file");
}

TEST_CASE("plugin file: the in-memory copy holds the bytes and cannot be changed") {
    const std::string bytes = bytes_of(examples / "demo.so");
    Result<UniqueFd> sealed = seal_in_memory("1-demo.so", bytes);
    REQUIRE(sealed);
    CHECK(bytes_of(path_of(*sealed)) == bytes);
    CHECK(::write(sealed->get(), "x", 1) == -1);
    CHECK(::ftruncate(sealed->get(), 10) == -1);
    CHECK(::fcntl(sealed->get(), F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));
}
