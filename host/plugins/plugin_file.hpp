// Reading a plugin file safely: who may have written it, whether it held
// still while it was read, and a copy of its bytes that nobody can change
// between hashing and loading.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "util/result.hpp"
#include "util/unique_fd.hpp"

namespace taskhost::plugins {

// Like sshd's StrictModes: a file or folder that a user other than the
// host's or root could have written is not trusted with the host's
// process. The reason when it is not, naming the owner or the mode bits.
Result<void> check_trusted(const struct ::stat &st, const std::string &what);
Result<void> check_trusted_folder(const std::filesystem::path &dir);

struct FileBytes {
    std::string bytes;
    std::string fingerprint;  // device, inode, size, mtime and ctime of what was read
};

// The file's bytes, read through one descriptor whose owner and mode are
// checked (unless `trust_any`). A file whose size or times change while it
// is read is still being written: ErrorKind::unavailable, to be retried.
Result<FileBytes> read_plugin_file(const std::filesystem::path &path, bool trust_any);

// The fingerprint read_plugin_file() would give the file now; empty if it
// cannot be examined.
std::string fingerprint_of(const std::filesystem::path &path);

// Whether `bytes` can be handed to dlopen() without touching memory past
// their end: a 64-bit ELF shared object for this machine whose headers and
// loadable segments all lie inside the file. A truncated build would
// otherwise fault (SIGBUS) inside the loader. The reason when not.
Result<void> check_elf_image(std::string_view bytes);

// `bytes` in an anonymous in-memory file sealed against any change, so what
// is loaded is exactly what was hashed. Load it by path_of(); keep the
// descriptor open while the image is mapped (the path names the descriptor).
Result<UniqueFd> seal_in_memory(const std::string &name, const std::string &bytes);
std::string path_of(const UniqueFd &sealed);

}  // namespace taskhost::plugins
