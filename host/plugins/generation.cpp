#include "plugins/generation.hpp"

#include <spdlog/spdlog.h>

namespace taskhost::plugins {

Generation::Generation(UniqueFd image, boost::dll::shared_library library, const th_plugin_desc *d)
    : desc(d), image_(std::move(image)), library_(std::move(library)) {}

Generation::~Generation() {
    if (initialized && desc != nullptr && desc->shutdown != nullptr) desc->shutdown();
    if (generation_number != 0)
        spdlog::info("plugin {} generation {} ({} {}) unloaded", file, generation_number, name, version);
    // library_'s destructor unloads the image now that nothing can call into it.
}

}  // namespace taskhost::plugins
