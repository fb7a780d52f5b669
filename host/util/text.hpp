// Small text helpers shared by the layers that read people's input
// (query strings, key files, paths).
#pragma once

#include <string_view>
#include <vector>

namespace taskhost {

// `text` cut at every `sep`: n separators give n + 1 pieces, empty ones
// included ("a,,b" → "a", "", "b"; "" → ""). The pieces view `text`.
std::vector<std::string_view> split(std::string_view text, char sep);

// `text` without leading and trailing spaces, tabs and carriage returns.
std::string_view trim(std::string_view text);

}  // namespace taskhost
