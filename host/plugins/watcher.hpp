// --watch: reload when the plugins folder changes (inotify), debounced so a
// copy that arrives in many writes, or several files dropped at once, cause
// one reload after the folder has been quiet for a moment.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "util/result.hpp"

namespace taskhost::plugins {

class FolderWatcher {
public:
    FolderWatcher(std::filesystem::path dir, std::chrono::milliseconds quiet, std::function<void()> on_change);
    ~FolderWatcher();
    FolderWatcher(const FolderWatcher &) = delete;
    FolderWatcher &operator=(const FolderWatcher &) = delete;

    // The reason if the folder cannot be watched.
    Result<void> start();

private:
    void loop();

    std::filesystem::path dir_;
    std::chrono::milliseconds quiet_;
    std::function<void()> on_change_;
    int inotify_fd_ = -1;
    int stop_fd_ = -1;  // eventfd: wakes the loop to stop
    std::thread thread_;
};

}  // namespace taskhost::plugins
