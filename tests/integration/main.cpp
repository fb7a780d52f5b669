// doctest main for the HTTP integration tests, plus a listener that prints the
// stderr of every taskhost process a failing test case started.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <cstdio>
#include <mutex>
#include <vector>

#include "test_log.hpp"

namespace th_test {

namespace {
std::mutex g_mu;
std::vector<std::pair<std::string, std::string>> g_logs;
}  // namespace

void record_host_log(const std::string &title, const std::string &text) {
    std::lock_guard lock(g_mu);
    g_logs.emplace_back(title, text);
}

namespace {

struct HostLogListener : doctest::IReporter {
    explicit HostLogListener(const doctest::ContextOptions &) {}
    void report_query(const doctest::QueryData &) override {}
    void test_run_start() override {
        // A dead HTTP peer must fail a request, not kill the test binary.
        ::signal(SIGPIPE, SIG_IGN);
    }
    void test_run_end(const doctest::TestRunStats &) override {}
    void test_case_start(const doctest::TestCaseData &) override {
        std::lock_guard lock(g_mu);
        g_logs.clear();
    }
    void test_case_reenter(const doctest::TestCaseData &) override {}
    void test_case_end(const doctest::CurrentTestCaseStats &stats) override {
        std::lock_guard lock(g_mu);
        if (!stats.testCaseSuccess) {
            for (const auto &[title, text] : g_logs) {
                if (text.empty()) continue;
                std::fprintf(stderr, "----- %s -----\n%s\n", title.c_str(), text.c_str());
            }
        }
        g_logs.clear();
    }
    void test_case_exception(const doctest::TestCaseException &) override {}
    void subcase_start(const doctest::SubcaseSignature &) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData &) override {}
    void log_message(const doctest::MessageData &) override {}
    void test_case_skipped(const doctest::TestCaseData &) override {}
};

}  // namespace

}  // namespace th_test

REGISTER_LISTENER("host_stderr", 1, th_test::HostLogListener);
