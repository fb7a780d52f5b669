#include "plugins/plugin_file.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

namespace taskhost::plugins {

namespace fs = std::filesystem;

namespace {

std::string fingerprint(const struct ::stat &st) {
    std::ostringstream out;
    out << st.st_dev << ':' << st.st_ino << ':' << st.st_size << ':' << st.st_mtim.tv_sec << '.' << st.st_mtim.tv_nsec
        << ':' << st.st_ctim.tv_sec << '.' << st.st_ctim.tv_nsec;
    return out.str();
}

Error system_error(const std::string &what) { return fail(ErrorKind::unavailable, what + ": " + std::strerror(errno)); }

Error untrusted(const std::string &why) {
    return fail(ErrorKind::invalid, why + "; pass --allow-insecure-plugins to load it anyway");
}

}  // namespace

Result<void> check_trusted(const struct ::stat &st, const std::string &what) {
    const uid_t host_user = ::geteuid();
    if (st.st_uid != host_user && st.st_uid != 0)
        return untrusted("insecure " + what + ": owned by uid " + std::to_string(st.st_uid) +
                         ", neither the host's user (uid " + std::to_string(host_user) + ") nor root");
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return untrusted("insecure " + what + ": writable by " +
                         ((st.st_mode & S_IWOTH) ? std::string("any user") : std::string("its group")) + " (mode " +
                         mode + ")");
    }
    return {};
}

Result<void> check_trusted_folder(const fs::path &dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return system_error("cannot examine the plugins folder " + dir.string());
    return check_trusted(st, "plugins folder " + dir.string());
}

std::string fingerprint_of(const fs::path &path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? fingerprint(st) : std::string();
}

Result<FileBytes> read_plugin_file(const fs::path &path, bool trust_any) {
    // O_NONBLOCK: a FIFO put in the folder must not block the loader.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd && errno != ENOENT)  // unreadable (permissions, say): refused until it changes
        return fail(ErrorKind::invalid, std::string("cannot open the file: ") + std::strerror(errno));
    if (!fd) return system_error("cannot open the file");  // gone since the scan
    struct stat before {};
    if (::fstat(fd.get(), &before) != 0) return system_error("cannot examine the file");
    if (!S_ISREG(before.st_mode)) return fail(ErrorKind::invalid, "not a regular file");
    if (!trust_any)
        if (Result<void> trusted = check_trusted(before, "file"); !trusted) return std::move(trusted).error();
    FileBytes out;
    out.bytes.resize(static_cast<size_t>(before.st_size));
    size_t done = 0;
    while (done < out.bytes.size()) {
        ssize_t n = ::read(fd.get(), out.bytes.data() + done, out.bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return system_error("cannot read the file");
        if (n == 0) break;  // shrunk while read: caught below
        done += static_cast<size_t>(n);
    }
    struct stat after {};
    if (::fstat(fd.get(), &after) != 0) return system_error("cannot examine the file");
    out.fingerprint = fingerprint(after);
    if (done != out.bytes.size() || out.fingerprint != fingerprint(before))
        return fail(ErrorKind::unavailable, "the file changed while it was read (is it still being written?)");
    return out;
}

Result<void> check_elf_image(std::string_view bytes) {
    auto bad = [&](const std::string &why) {
        return fail(ErrorKind::invalid, "not a loadable shared library: " + why);
    };
    Elf64_Ehdr header;
    if (bytes.size() < sizeof header)
        return bad("shorter than an ELF header (" + std::to_string(bytes.size()) + " bytes)");
    std::memcpy(&header, bytes.data(), sizeof header);
    if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return bad("not an ELF file");
    if (header.e_ident[EI_CLASS] != ELFCLASS64) return bad("not a 64-bit ELF file");
    if (header.e_type != ET_DYN) return bad("an ELF file, but not a shared object");
    if (header.e_phentsize != sizeof(Elf64_Phdr)) return bad("unexpected program header size");
    const uint64_t size = bytes.size();
    const uint64_t table_end = header.e_phoff + uint64_t{header.e_phnum} * sizeof(Elf64_Phdr);
    auto truncated = [&](uint64_t needed) {
        return bad("truncated: needs " + std::to_string(needed) + " bytes, the file has " + std::to_string(size));
    };
    if (header.e_phoff > size || table_end > size) return truncated(table_end);
    // The loader never reads the section headers, but they come last: a
    // file that lacks them was cut short, whatever else it still holds.
    const uint64_t sections_end = header.e_shoff + uint64_t{header.e_shnum} * header.e_shentsize;
    if (header.e_shoff != 0 && (header.e_shoff > size || sections_end > size)) return truncated(sections_end);
    for (uint16_t i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr segment;
        std::memcpy(&segment, bytes.data() + header.e_phoff + i * sizeof segment, sizeof segment);
        if (segment.p_type != PT_LOAD && segment.p_type != PT_DYNAMIC) continue;
        if (segment.p_offset > size || segment.p_filesz > size - segment.p_offset)
            return truncated(segment.p_offset + segment.p_filesz);
    }
    return {};
}

Result<UniqueFd> seal_in_memory(const std::string &name, const std::string &bytes) {
    UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) return system_error("cannot create an in-memory copy");
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return system_error("cannot write the in-memory copy");
        done += static_cast<size_t>(n);
    }
    // F_SEAL_WRITE answers EBUSY while the kernel still holds an extra
    // reference to a page just written (seen once under load): the
    // kernel's own wait for such pins is short, so a few tries suffice.
    constexpr int seal_tries = 10;
    for (int tried = 1;; ++tried) {
        if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0) return fd;
        if (errno != EBUSY || tried == seal_tries) return system_error("cannot seal the in-memory copy");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::string path_of(const UniqueFd &sealed) { return "/proc/self/fd/" + std::to_string(sealed.get()); }

}  // namespace taskhost::plugins
