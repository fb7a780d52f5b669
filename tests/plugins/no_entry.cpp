// Fixture: a genuine shared library that exports a symbol, but not the
// taskhost entry point. The host must refuse it.
extern "C" __attribute__((visibility("default"))) int taskhost_not_the_entry(void) { return 42; }
