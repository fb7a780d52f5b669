#include "exec/traceback.hpp"

#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <utility>

#include "exec/symbolizer.hpp"

namespace taskhost::exec {

namespace {

std::string_view base_name(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string hex(std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
    return buf;
}

// A function of the SDK's call into the task: the SDK's own, or the
// std::invoke it goes through. Demangled names may start with a return type,
// and a task's own parameters may be taskhost types, so the markers are the
// SDK's templates and internals.
bool is_sdk_dispatch(std::string_view function) {
    for (std::string_view marker :
         {"taskhost::Task<", "taskhost::detail::", "std::__invoke_impl<", "std::__invoke<", "std::invoke<"})
        if (function.find(marker) != std::string_view::npos) return true;
    return false;
}

}  // namespace

std::string render_traceback(const TracebackReport &r) {
    std::string out = r.at_throw ? "Traceback (innermost first, captured where it was thrown)"
                                 : "Traceback (innermost first, captured where the plugin caught it: the throw "
                                   "site was not recorded)";
    const auto shown_name = [&](const ThrownFrame &f) {
        return !r.plugin_module.empty() && f.module == r.plugin_module ? base_name(r.plugin_file)
                                                                        : base_name(f.module);
    };
    for (const ThrownFrame &f : r.frames) {
        if (r.plugin_module.empty() || f.module != r.plugin_module) continue;
        out.append(", plugin ").append(base_name(r.plugin_file));
        if (!f.build_id.empty()) out.append(" build-id ").append(f.build_id);
        break;
    }
    out += ":\n";

    // One line per function, inlined ones included. The plugin's image is
    // read once per report, only if one of its frames is here.
    struct Line {
        SourceLocation location;
        std::string where;  // module+offset
    };
    std::vector<Line> lines;
    std::map<std::pair<std::string, std::string>, std::unique_ptr<ModuleSymbols>> modules;
    for (const ThrownFrame &f : r.frames) {
        std::string where = f.module.empty() ? hex(f.offset) : std::string(shown_name(f)) + '+' + hex(f.offset);
        std::vector<SourceLocation> locations;
        // Only the plugin's own image, which the host found itself: the
        // module names in frames are the plugin's word, and the host opens
        // no file a plugin names.
        if (!f.module.empty() && f.module == r.plugin_module) {
            auto &symbols = modules[{f.module, f.build_id}];
            if (!symbols)
                symbols = std::make_unique<ModuleSymbols>(
                    r.plugin_image.empty() ? f.module : std::string(r.plugin_image), f.build_id);
            locations = symbols->at(f.offset);
        }
        if (locations.empty()) locations.emplace_back();
        for (SourceLocation &l : locations) lines.push_back({std::move(l), where});
    }

    // The outermost lines are the SDK calling the task (Task::invoke, run,
    // call, std::invoke): one line says so.
    std::string sdk_where;
    while (!lines.empty() && is_sdk_dispatch(lines.back().location.function)) {
        sdk_where = lines.back().where;
        lines.pop_back();
    }

    int number = 0;
    for (const Line &line : lines) {
        const SourceLocation &l = line.location;
        out.append("  #").append(std::to_string(number++)).append(" ");
        if (l.function.empty() && l.file.empty()) {
            out.append(line.where).append("\n");
            continue;
        }
        out.append(l.function.empty() ? "??" : l.function);
        if (!l.file.empty()) out.append(" at ").append(l.file).append(":").append(std::to_string(l.line));
        out.append(" (").append(line.where).append(l.inlined ? ", inlined" : "").append(")\n");
    }
    if (!sdk_where.empty()) out.append("  #").append(std::to_string(number)).append(" the taskhost SDK calling the task (").append(sdk_where).append(")\n");
    out.append(r.type).append(": ").append(r.message);
    return out;
}

}  // namespace taskhost::exec
