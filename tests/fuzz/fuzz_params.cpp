// libFuzzer target: the SDK's JSON → parameter binding (validate(), which
// runs exactly the binding invoke() uses) on arbitrary request bodies.
// It must never crash, throw across the C boundary or accept what it cannot
// bind.
#include <taskhost/sdk.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace taskhost;

namespace {

json all_kinds(bool, int8_t, uint16_t, int64_t, double, std::string, json, std::vector<int>,
               std::optional<std::vector<std::optional<std::string>>>, std::map<std::string, double>) {
    return nullptr;
}
json defaults(Context &, int count, std::string label) { return {{"count", count}, {"label", label}}; }

}  // namespace

TASKHOST_PLUGIN("fuzz", "1.0.0",
                task("all_kinds", all_kinds).params("b", "i8", "u16", "i64", "d", "s", "j", "v", "o", "m"),
                task("defaults", defaults).param("count", 3).param("label", "x"));

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const th_plugin_desc *desc = taskhost_plugin_v1();
    std::string error;
    th_sink sink{&error, [](void *o, const char *d, size_t n) { static_cast<std::string *>(o)->append(d, n); }};
    for (uint32_t i = 0; i < desc->task_count; ++i) {
        error.clear();
        th_status status = desc->tasks[i].validate(reinterpret_cast<const char *>(data), size, &sink);
        // A refusal always says why, and names what it refused.
        if (status != TH_OK && error.empty()) __builtin_trap();
    }
    return 0;
}
