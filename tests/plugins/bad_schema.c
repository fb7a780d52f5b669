/* Fixture: a plain C plugin whose task declares a params schema that is JSON
 * but not a JSON Schema ("type" must be a string or an array). The host must
 * refuse it at load, naming the task, rather than serve a schema it cannot
 * apply. */
#include <taskhost/abi.h>

static th_status invoke(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    (void)params_json;
    (void)params_len;
    host->set_result(call, "null", 4);
    return TH_OK;
}

static const th_task_desc tasks[] = {{
    .struct_size = sizeof(th_task_desc),
    .name = "bad_schema_task",
    .signature = "() -> null",
    .params_schema_json = "{\"type\": 5}",
    .invoke = invoke,
}};

static const th_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = TH_ABI_MAJOR,
    .abi_minor = TH_ABI_MINOR,
    .struct_size = sizeof(th_plugin_desc),
    .task_count = 1,
    .name = "bad_schema",
    .version = "1.0.0",
    .tasks = tasks,
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
