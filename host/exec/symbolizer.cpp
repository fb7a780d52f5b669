#include "exec/symbolizer.hpp"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <taskhost/detail/exceptions.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>

namespace taskhost::exec {

namespace {

// Offline: modules are files we name, debug info is in them or where the
// distribution keeps it (/usr/lib/debug, by build-id).
char *debuginfo_path = nullptr;
const Dwfl_Callbacks offline_callbacks = {
    dwfl_build_id_find_elf,
    dwfl_standard_find_debuginfo,
    dwfl_offline_section_address,
    &debuginfo_path,
};

std::string hex(const unsigned char *bytes, int count) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < count; ++i) {
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 15];
    }
    return out;
}

// Demangled, in the SDK's tidy spelling (std::string, no __cxx11).
std::string demangle(const char *name) {
    if (name == nullptr) return {};
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                      &std::free);
    return status == 0 && plain ? taskhost::detail::tidy_type_name(plain.get()) : std::string(name);
}

// The name of a function's DIE (following declarations and abstract
// origins): its linkage name demangled, which carries the parameter types,
// or its plain name (extern "C", main, internal functions).
std::string function_name(Dwarf_Die *die) {
    Dwarf_Attribute attr;
    for (int at : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name})
        if (const char *linkage = dwarf_formstring(dwarf_attr_integrate(die, at, &attr)))
            return demangle(linkage);
    const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
    return name != nullptr ? name : "";
}

// Line tables may name files relative to the compilation directory (ccache's
// base_dir makes them so).
std::string full_path(const char *comp_dir, const char *file) {
    std::filesystem::path path(file);
    if (path.is_relative() && comp_dir != nullptr && *comp_dir != '\0') path = std::filesystem::path(comp_dir) / path;
    return path.lexically_normal().string();
}

// The compile unit whose code is at `address`. libdw finds it through
// .debug_aranges, which clang does not write unless asked to
// (-gdwarf-aranges): then each unit's own address ranges are looked at.
Dwarf_Die *unit_at(Dwfl_Module *module, Dwarf_Addr address, Dwarf_Addr &bias) {
    if (Dwarf_Die *cu = dwfl_module_addrdie(module, address, &bias)) return cu;
    Dwarf_Die *cu = nullptr;
    while ((cu = dwfl_module_nextcu(module, cu, &bias)) != nullptr)
        if (dwarf_haspc(cu, address - bias) > 0) return cu;
    return nullptr;
}

}  // namespace

ModuleSymbols::ModuleSymbols(const std::string &path, std::string_view build_id) {
    dwfl_ = dwfl_begin(&offline_callbacks);
    if (dwfl_ == nullptr) return;
    dwfl_report_begin(dwfl_);
    Dwfl_Module *module = dwfl_report_elf(dwfl_, path.c_str(), path.c_str(), -1, 0, false);
    dwfl_report_end(dwfl_, nullptr, nullptr);
    if (module == nullptr) return;
    if (!build_id.empty()) {
        const unsigned char *bits = nullptr;
        GElf_Addr where = 0;
        const int size = dwfl_module_build_id(module, &bits, &where);
        if (size <= 0 || hex(bits, size) != build_id) return;
    }
    Dwarf_Addr bias = 0;
    if (dwfl_module_getelf(module, &bias) == nullptr) return;
    bias_ = bias;
    module_ = module;
}

ModuleSymbols::~ModuleSymbols() {
    if (dwfl_ != nullptr) dwfl_end(dwfl_);
}

std::vector<SourceLocation> ModuleSymbols::at(std::uint64_t offset) const {
    std::vector<SourceLocation> out;
    if (module_ == nullptr) return out;
    const Dwarf_Addr address = bias_ + offset;
    const char *symbol = dwfl_module_addrname(module_, address);

    Dwarf_Addr cu_bias = 0;
    Dwarf_Die *cu = unit_at(module_, address, cu_bias);
    Dwarf_Attribute attr;
    const char *comp_dir = cu != nullptr ? dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr)) : nullptr;

    // The line table names the innermost code, inlined or not.
    std::string file;
    int line = 0;
    if (Dwarf_Line *source = cu != nullptr ? dwarf_getsrc_die(cu, address - cu_bias) : nullptr) {
        if (const char *name = dwarf_linesrc(source, nullptr, nullptr)) {
            file = full_path(comp_dir, name);
            dwarf_lineno(source, &line);
        }
    }

    if (cu != nullptr) {
        Dwarf_Files *files = nullptr;
        size_t file_count = 0;
        if (dwarf_getsrcfiles(cu, &files, &file_count) != 0) files = nullptr;

        // The innermost function scope at the address: an inlined call or
        // the function itself.
        Dwarf_Die innermost;
        bool found = false;
        Dwarf_Die *scopes = nullptr;
        const int count = dwarf_getscopes(cu, address - cu_bias, &scopes);
        for (int i = 0; i < count && !found; ++i) {
            const int tag = dwarf_tag(&scopes[i]);
            if (tag == DW_TAG_inlined_subroutine || tag == DW_TAG_subprogram) {
                innermost = scopes[i];
                found = true;
            }
        }
        std::free(scopes);  // allocated by libdw with malloc

        // Its enclosing DIEs (dwarf_getscopes gives those of an inlined
        // function's abstract definition instead): each inlined call, then
        // the function. Each inlined one says where in the next it was called.
        Dwarf_Die *chain = nullptr;
        const int depth = found ? dwarf_getscopes_die(&innermost, &chain) : 0;
        for (int i = 0; i < depth; ++i) {
            const int tag = dwarf_tag(&chain[i]);
            if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
            if (tag == DW_TAG_subprogram) {
                std::string name = function_name(&chain[i]);
                // Internal functions carry no linkage name; the symbol table's
                // name has the parameter types (and names a clone as such).
                if (name.find('(') == std::string::npos && symbol != nullptr) name = demangle(symbol);
                out.push_back({std::move(name), file, line, false});
                break;
            }
            out.push_back({function_name(&chain[i]), file, line, true});
            Dwarf_Word value = 0;
            file.clear();
            line = 0;
            if (files != nullptr && dwarf_formudata(dwarf_attr(&chain[i], DW_AT_call_file, &attr), &value) == 0)
                if (const char *name = dwarf_filesrc(files, value, nullptr, nullptr)) file = full_path(comp_dir, name);
            if (dwarf_formudata(dwarf_attr(&chain[i], DW_AT_call_line, &attr), &value) == 0)
                line = static_cast<int>(value);
        }
        std::free(chain);
    }

    // No DWARF for it: the symbol table still names the function.
    if (out.empty() && (symbol != nullptr || !file.empty())) out.push_back({demangle(symbol), file, line, false});
    return out;
}

}  // namespace taskhost::exec
