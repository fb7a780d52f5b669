#include "plugins/watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace taskhost::plugins {

FolderWatcher::FolderWatcher(std::filesystem::path dir, std::chrono::milliseconds quiet,
                             std::function<void()> on_change)
    : dir_(std::move(dir)), quiet_(quiet), on_change_(std::move(on_change)) {}

FolderWatcher::~FolderWatcher() {
    if (stop_fd_ >= 0) {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
    }
    if (thread_.joinable()) thread_.join();
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

Result<void> FolderWatcher::start() {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (inotify_fd_ < 0 || stop_fd_ < 0)
        return fail(ErrorKind::unavailable, std::string("inotify unavailable: ") + std::strerror(errno));
    // Completed writes, renames in and out, creation and deletion; not every
    // partial write (IN_MODIFY) of a file being copied.
    uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB;
    if (::inotify_add_watch(inotify_fd_, dir_.c_str(), mask) < 0)
        return fail(ErrorKind::unavailable, "cannot watch " + dir_.string() + ": " + std::strerror(errno));
    thread_ = std::thread([this] { loop(); });
    return {};
}

void FolderWatcher::loop() {
    alignas(inotify_event) char buf[16 * 1024];
    bool dirty = false;
    for (;;) {
        pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        // Block until something happens; once dirty, wait only for the quiet
        // period and fire when it passes without new events.
        int timeout = dirty ? static_cast<int>(quiet_.count()) : -1;
        int n = ::poll(fds, 2, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            spdlog::error("plugin folder watch stopped: {}", std::strerror(errno));
            return;
        }
        if (fds[1].revents & POLLIN) return;
        if (n == 0) {
            dirty = false;
            on_change_();
            continue;
        }
        if (fds[0].revents & POLLIN) {
            while (::read(inotify_fd_, buf, sizeof buf) > 0) {
            }
            dirty = true;
        }
    }
}

}  // namespace taskhost::plugins
