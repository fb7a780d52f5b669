// Fixture plugin "init_fails": its init throws, so the host must refuse it
// with the reason "database unavailable".
#include <taskhost/sdk.hpp>

#include <stdexcept>

using taskhost::json;
using namespace taskhost;

namespace {
void init(Database &) { throw std::runtime_error("database unavailable"); }
json never_runs() { return {{"ran", true}}; }
}  // namespace

TASKHOST_PLUGIN_WITH_INIT("init_fails", "1.0.0", init,
                          task("init_fails_task", never_runs).doc("Never callable: its plugin fails to initialise."));
