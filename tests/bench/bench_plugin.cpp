// Fixture for the `plugins` scenario of taskhost-bench: one build, copied
// under many file names. Its plugin name and its ten task names come from the
// file it was loaded from, so 200 copies serve 2,000 distinct tasks:
//
//   p017.so                         → plugin "p017", tasks p017_t0 … p017_t9
//   /proc/self/fd/N → memfd:3-p017.so (the host's sealed copy) → the same names
//
// The names are computed when the host first calls the entry point (see
// plugin_name_from_file.hpp).
#include <string>

#include <taskhost/sdk.hpp>

#include "plugin_name_from_file.hpp"

using taskhost::json;
using namespace taskhost;

extern "C" TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void);

namespace {

const std::string &prefix() {
    static const std::string p =
        bench_fixture::plugin_name_from_file(reinterpret_cast<const void *>(&taskhost_plugin_v1), "bench");
    return p;
}

template <int K>
json bench_task(int x) {
    return {{"task", prefix() + "_t" + std::to_string(K)}, {"x", x}};
}

template <int K>
auto make_task() {
    return task(prefix() + "_t" + std::to_string(K), bench_task<K>)
        .doc("Benchmark fixture task " + std::to_string(K) + " of plugin " + prefix() + ".")
        .tags({"bench", "t" + std::to_string(K)})
        .param("x", 0);
}

}  // namespace

TASKHOST_PLUGIN(prefix(), "1.0.0", make_task<0>(), make_task<1>(), make_task<2>(), make_task<3>(), make_task<4>(),
                make_task<5>(), make_task<6>(), make_task<7>(), make_task<8>(), make_task<9>());
