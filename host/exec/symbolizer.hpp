// Function, source file and line of addresses in one ELF module, read from
// its DWARF with elfutils' libdw (or its symbol table when it has no debug
// info). Plugins need none of this: they send module, build-id and offset,
// and the host looks them up here, only when an error is reported.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// libdw's handles, kept out of this header.
typedef struct Dwfl Dwfl;
typedef struct Dwfl_Module Dwfl_Module;

namespace taskhost::exec {

struct SourceLocation {
    std::string function;  // demangled; empty if unknown
    std::string file;      // as the debug info names it; empty if unknown
    int line = 0;
    bool inlined = false;  // inlined into the next location of the same address
};

class ModuleSymbols {
public:
    // Reads the ELF file at `path`. With a non-empty `build_id` (hex), a file
    // whose build-id differs is not used: its addresses would mean other code.
    ModuleSymbols(const std::string &path, std::string_view build_id);
    ~ModuleSymbols();
    ModuleSymbols(const ModuleSymbols &) = delete;
    ModuleSymbols &operator=(const ModuleSymbols &) = delete;

    // Whether the file was read (and matched the build-id).
    bool usable() const { return module_ != nullptr; }

    // What the code at link-time address `offset` is, innermost first: the
    // functions inlined there, then the function that holds them. Empty if
    // nothing is known.
    std::vector<SourceLocation> at(std::uint64_t offset) const;

private:
    Dwfl *dwfl_ = nullptr;
    Dwfl_Module *module_ = nullptr;
    std::uint64_t bias_ = 0;  // libdw's address of link-time address 0
};

}  // namespace taskhost::exec
