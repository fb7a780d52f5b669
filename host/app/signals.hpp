// Signals are taken by one thread with sigwait(), never by handlers: no
// handler runs in an arbitrary thread, so nothing unsafe can happen in one.
// SIGHUP asks for a reload, SIGINT and SIGTERM for a stop.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace taskhost::app {

// Blocks SIGHUP, SIGINT and SIGTERM in the calling thread, and so in every
// thread it starts later: call first thing in main. Ignores SIGPIPE (a
// client that hangs up fails a write instead) and SIGXFSZ (a file size
// limit fails the write, EFBIG, instead of killing the host: the commit
// fails, callers get 503 and /health says why).
void block_signals();

class SignalThread {
public:
    // `on_stop` runs once, on the signal thread, and may block until the
    // stop has taken effect.
    SignalThread(std::function<void()> on_reload, std::function<void()> on_stop);
    ~SignalThread();  // ends the thread without calling on_stop
    SignalThread(const SignalThread &) = delete;
    SignalThread &operator=(const SignalThread &) = delete;

private:
    void loop();

    const std::function<void()> on_reload_, on_stop_;
    std::atomic<bool> closing_{false};
    std::thread thread_;
};

}  // namespace taskhost::app
