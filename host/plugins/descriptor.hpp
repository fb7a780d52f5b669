// What a plugin's descriptor must hold before the host reads further into
// it: the magic, a supported ABI, a name, well-formed task tables.
#pragma once

#include <taskhost/abi.h>

#include "util/result.hpp"

namespace taskhost::plugins {

// ErrorKind::invalid with the reason when the descriptor cannot be used.
Result<void> check_descriptor(const th_plugin_desc *d);

}  // namespace taskhost::plugins
