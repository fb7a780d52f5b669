#include "plugins/generation.hpp"

#include <dlfcn.h>

#include <spdlog/spdlog.h>

#include "plugins/plugin_file.hpp"

namespace taskhost::plugins {

Generation::Generation(UniqueFd image, boost::dll::shared_library library,
                       std::unique_ptr<const Descriptor> descriptor_copy)
    : descriptor(std::move(descriptor_copy)),
      desc(&descriptor->plugin()),
      image_(std::move(image)),
      library_(std::move(library)) {
    image_fd = image_.get();
}

Generation::Generation(UniqueFd image, std::unique_ptr<const Descriptor> remote_descriptor)
    : descriptor(std::move(remote_descriptor)), desc(&descriptor->plugin()), image_(std::move(image)) {
    image_fd = image_.get();
    in_process = false;
}

Generation::~Generation() {
    if (!library_.is_loaded()) {
        if (generation_number != 0)
            spdlog::info("plugin {} generation {} ({} {}) released", file, generation_number, name, version);
        return;
    }
    if (initialized && desc != nullptr && desc->shutdown != nullptr) desc->shutdown();
    library_.unload();
    if (image_) {
        // An image the loader keeps (a plugin linked with -z nodelete, or
        // with unique symbols) stays known by its /proc/self/fd path: were
        // the fd closed, its number reused by a later generation would be
        // answered with this old image. So the fd stays open for good.
        if (void *still = ::dlopen(path_of(image_).c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
            ::dlclose(still);
            (void)image_.release();
            spdlog::warn(
                "plugin {} generation {} ({} {}) stays mapped after unloading (built without "
                "taskhost_add_plugin?); its memory is not returned",
                file, generation_number, name, version);
            return;
        }
    }
    if (generation_number != 0)
        spdlog::info("plugin {} generation {} ({} {}) unloaded", file, generation_number, name, version);
}

}  // namespace taskhost::plugins
