// A failed task's traceback as the SDK reports it (th_frame: module,
// build-id, offset, innermost first), rendered as the text the job and its
// error artifact carry: the plugin's file name and build-id, then each
// frame's function, file and line where debug info tells, and always its
// module+offset, so `addr2line -e <plugin>.so <offset>` works offline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::exec {

struct ThrownFrame {
    std::string module;    // the file the loader knows the module by
    std::string build_id;  // hex, or empty
    std::uint64_t offset = 0;
};

struct TracebackReport {
    std::string_view type, message;
    std::vector<ThrownFrame> frames;
    bool at_throw = false;  // captured where thrown (else where the plugin caught it)
    // The plugin's module as the loader knows it (its frames are found by
    // it) and the file name to show for it instead.
    std::string_view plugin_module, plugin_file;
    // Where to read the plugin's debug info, when not at plugin_module (a
    // worker process's name for it means nothing in the host).
    std::string_view plugin_image;
};

std::string render_traceback(const TracebackReport &report);

}  // namespace taskhost::exec
