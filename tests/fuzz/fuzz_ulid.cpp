// libFuzzer target: the ULID parser. Whatever it accepts must print back
// exactly as given, and it must never read past the input.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "util/ulid.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto parsed = taskhost::parse_ulid(text);
    if (parsed && parsed->str() != text) __builtin_trap();
    if (parsed && size != 26) __builtin_trap();
    return 0;
}
