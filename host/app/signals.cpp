#include "app/signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

namespace taskhost::app {

namespace {

sigset_t taken_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

}  // namespace

void block_signals() {
    const sigset_t set = taken_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGXFSZ, SIG_IGN);
}

SignalThread::SignalThread(std::function<void()> on_reload, std::function<void()> on_stop)
    : on_reload_(std::move(on_reload)), on_stop_(std::move(on_stop)), thread_([this] { loop(); }) {}

SignalThread::~SignalThread() {
    closing_.store(true);
    // Wakes sigwait() if the thread is still in it (the stop came from
    // elsewhere); the signal is blocked everywhere, so only sigwait sees it.
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
}

void SignalThread::loop() {
    const sigset_t set = taken_signals();
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (closing_.load()) return;
        if (sig == SIGHUP) {
            on_reload_();
            continue;
        }
        spdlog::info("signal {}: shutting down", sig);
        on_stop_();
        return;
    }
}

}  // namespace taskhost::app
