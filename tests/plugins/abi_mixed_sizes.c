/* Fixture: a task table whose elements declare different struct sizes.
 * The stride is ambiguous, so the host must refuse the plugin. */
#include <taskhost/abi.h>

static th_status invoke(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    (void)params_json;
    (void)params_len;
    host->set_result(call, "null", 4);
    return TH_OK;
}

static const th_task_desc tasks[] = {
    {.struct_size = sizeof(th_task_desc), .name = "mixed_one", .signature = "() -> null", .invoke = invoke},
    {.struct_size = sizeof(th_task_desc) + 8, .name = "mixed_two", .signature = "() -> null", .invoke = invoke},
};

static const th_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = TH_ABI_MAJOR,
    .abi_minor = TH_ABI_MINOR,
    .struct_size = sizeof(th_plugin_desc),
    .task_count = 2,
    .name = "abi_mixed_sizes",
    .version = "1.0.0",
    .tasks = tasks,
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
