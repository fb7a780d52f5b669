// Host stderr captured during the current test case; the doctest listener in
// main.cpp prints it when the test case fails.
#pragma once

#include <string>

namespace th_test {

void record_host_log(const std::string &title, const std::string &text);

}  // namespace th_test
