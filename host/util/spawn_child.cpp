#include "util/spawn_child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>

#include "util/unique_fd.hpp"

extern char **environ;

namespace taskhost {

pid_t spawn_child(const std::string &binary, const std::vector<std::string> &args, const std::vector<ChildFd> &fds) {
    // Copies above every number a child receives a descriptor at, so that
    // no dup2 below overwrites the source of another.
    std::vector<UniqueFd> sources;
    for (const ChildFd &fd : fds) {
        sources.emplace_back(::fcntl(fd.from, F_DUPFD_CLOEXEC, 10));
        if (!sources.back()) return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (size_t i = 0; i < fds.size(); ++i) posix_spawn_file_actions_adddup2(&actions, sources[i].get(), fds[i].to);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<std::string> arg_copies = args;
    std::vector<char *> argv;
    for (auto &a : arg_copies) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int spawned = ::posix_spawn(&pid, binary.c_str(), &actions, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    sources.clear();  // closed before errno is set, so no close() can change it
    if (spawned != 0) {
        errno = spawned;
        return -1;
    }
    return pid;
}

}  // namespace taskhost
