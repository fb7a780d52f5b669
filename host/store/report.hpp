// Where the writer and the checkpointer send the failures nobody waits for.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <utility>

namespace taskhost::store {

class Reporter {
public:
    explicit Reporter(std::function<void(const std::string &)> sink) : sink_(std::move(sink)) {}

    // To the sink, or to stderr when there is none or it throws.
    void operator()(const std::string &what) const {
        if (sink_) {
            try {
                sink_(what);
                return;
            } catch (...) {
            }
        }
        std::fprintf(stderr, "taskhost store: %s\n", what.c_str());
    }

private:
    std::function<void(const std::string &)> sink_;
};

}  // namespace taskhost::store
