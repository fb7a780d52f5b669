// probe_in_child() with the real taskhost binary in probe mode: it passes
// a sound plugin with the descriptor the child read, and bounds that report.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "plugins/descriptor.hpp"
#include "plugins/plugin_file.hpp"
#include "plugins/probe.hpp"

using namespace taskhost;
namespace fs = std::filesystem;

namespace {

UniqueFd sealed(const fs::path &file) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Result<UniqueFd> image = plugins::seal_in_memory("probe-test-" + file.filename().string(), bytes);
    REQUIRE(image);
    return std::move(*image);
}

}  // namespace

TEST_SUITE("probe") {

TEST_CASE("probe: a sound plugin passes with the descriptor its child read, which reads back") {
    const fs::path file = fs::path(TASKHOST_PLUGIN_DIR) / "storage.so";  // with an init
    const UniqueFd image = sealed(file);
    const plugins::ProbeResult probed = plugins::probe_in_child({TASKHOST_BINARY}, image, "storage.so");
    INFO((probed.failure ? probed.failure->reason : std::string()));
    REQUIRE(probed.passed());
    auto remote = plugins::descriptor_from_json(probed.descriptor_json);
    INFO((remote ? std::string() : remote.error().message));
    REQUIRE(remote);
    CHECK(std::string((*remote)->plugin().name) == "storage");
    CHECK((*remote)->has_init());
    CHECK((*remote)->plugin().task_count == 3);
}

TEST_CASE("probe: a descriptor longer than the bound refuses the plugin, not the host") {
    const UniqueFd image = sealed(fs::path(TASKHOST_PLUGIN_DIR) / "demo.so");
    plugins::ProbeOptions options{TASKHOST_BINARY};
    options.max_descriptor_bytes = 256;
    const plugins::ProbeResult probed = plugins::probe_in_child(options, image, "demo.so");
    REQUIRE_FALSE(probed.passed());
    CHECK(probed.failure->reason == "its descriptor is larger than 256 bytes, the most the host reads");
    CHECK_FALSE(probed.failure->wedged);  // an ordinary refusal: not charged
    CHECK_FALSE(probed.failure->transient);
    CHECK(probed.descriptor_json.empty());
}

}  // TEST_SUITE("probe")
