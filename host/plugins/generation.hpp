// One loaded image of one plugin file. Reloads never change a generation:
// they load a new one beside it. A generation stays mapped while the
// registry or any job holds it; after the last holder lets go it is shut
// down and unloaded by the loader, at its next reload or at exit.
//
// A remote generation (--isolation process) is never mapped here: it keeps
// the sealed image for the worker processes that map it, and a descriptor
// the probe child reported (descriptor_from_json). Its end closes the image
// and nothing else: its init() and shutdown() are the workers' to run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include <taskhost/abi.h>

#include "plugins/descriptor.hpp"
#include "registry/registry.hpp"
#include "util/unique_fd.hpp"

namespace taskhost::plugins {

// The registry's view of it (file, name, version, generation number, jobs in
// flight) is its PluginInstance base.
class Generation : public registry::PluginInstance {
public:
    // `image`: the sealed in-memory file the library was loaded from; held
    // until after the unload, so its /proc/self/fd path names no other image.
    // `descriptor`: the host's copy of what the library's entry returned.
    Generation(UniqueFd image, boost::dll::shared_library library, std::unique_ptr<const Descriptor> descriptor);
    // A remote generation: in_process is false, no library.
    Generation(UniqueFd image, std::unique_ptr<const Descriptor> remote_descriptor);
    ~Generation();  // loaded here: plugin shutdown(), then dlclose
    Generation(const Generation &) = delete;
    Generation &operator=(const Generation &) = delete;

    const std::unique_ptr<const Descriptor> descriptor;
    const th_plugin_desc *desc;  // &descriptor->plugin(): the host's layout
    int64_t loaded_at_us = 0;
    std::vector<std::string> task_info;  // rendered TaskInfo JSON per task, by index
    bool initialized = false;            // init() succeeded here: shutdown() is owed

private:
    UniqueFd image_;  // declared first: closed after library_ unloads
    boost::dll::shared_library library_;  // not loaded for a remote generation
};

}  // namespace taskhost::plugins
