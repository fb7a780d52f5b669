/* Fixture: a C plugin (no SDK) whose task hands the host text that is not
 * JSON; the host must fail the job and say where the text stops being JSON. */
#include <taskhost/abi.h>

static th_status invoke(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    static const char text[] = "{\"answer\": 42, \"oops\": tru}";
    (void)params_json;
    (void)params_len;
    host->set_result(call, text, sizeof text - 1);
    return TH_OK;
}

static const char *const tags[] = {"results"};

static const th_task_desc tasks[] = {{
    .struct_size = sizeof(th_task_desc),
    .name = "not_json",
    .doc = "Returns text that is not JSON.",
    .signature = "() -> json",
    .tags = tags,
    .tag_count = 1,
    .params_schema_json = "{\"type\":\"object\",\"properties\":{},\"required\":[],\"additionalProperties\":false}",
    .invoke = invoke,
}};

static const th_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = TH_ABI_MAJOR,
    .abi_minor = TH_ABI_MINOR,
    .struct_size = sizeof(th_plugin_desc),
    .task_count = 1,
    .name = "raw_result",
    .version = "1.0.0",
    .tasks = tasks,
    .build_info = "hand-written C descriptor",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
