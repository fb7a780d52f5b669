// taskhost: flags and environment → configuration → the host, until a signal.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <variant>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/config.hpp"
#include "app/host.hpp"
#include "app/migrate_command.hpp"
#include "app/plugin_tools.hpp"
#include "app/probe_child.hpp"
#include "app/signals.hpp"
#include "app/worker_child.hpp"
#include "exec/crash_record.hpp"

int main(int argc, char **argv) {
    // libdw would ask debuginfod servers for a stripped plugin's debug info
    // while a job's traceback is symbolized: a network wait on a worker, and
    // build-ids sent out. Tracebacks use only what is on this machine.
    ::unsetenv("DEBUGINFOD_URLS");
    if (taskhost::app::is_worker_child(argc, argv)) return taskhost::app::run_worker_child(argc, argv);
    if (taskhost::app::is_probe_child(argc, argv)) return taskhost::app::run_probe_child(argc, argv);
    if (taskhost::app::is_plugin_command(argc, argv)) return taskhost::app::run_plugin_command(argc, argv);
    if (taskhost::app::is_migrate_command(argc, argv)) return taskhost::app::run_migrate_command(argc, argv);
    auto config = taskhost::app::read_config(argc, argv);
    if (const int *exit_status = std::get_if<int>(&config)) return *exit_status;
    auto &cfg = std::get<taskhost::app::Config>(config);

    spdlog::set_default_logger(spdlog::stderr_color_mt("taskhost"));
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);

    // Before any thread starts, so that every thread has them blocked.
    taskhost::app::block_signals();
    int status = 1;
    try {
        status = taskhost::app::run(std::move(cfg));
    } catch (const std::exception &e) {
        spdlog::critical("fatal: {}", e.what());
    }
    taskhost::exec::CrashRecord::exiting_normally();
    return status;
}
