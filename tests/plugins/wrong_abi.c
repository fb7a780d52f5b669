/* Fixture: a hand-written C descriptor (no SDK) claiming ABI major 99. The
 * host must refuse it before calling anything in it. Otherwise well-formed,
 * so the ABI major is the only reason. */
#include <taskhost/abi.h>

static th_status invoke(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    (void)params_json;
    (void)params_len;
    host->set_result(call, "null", 4);
    return TH_OK;
}

static const char *const tags[] = {"abi"};

static const th_task_desc tasks[] = {{
    .struct_size = sizeof(th_task_desc),
    .name = "wrong_abi_task",
    .doc = "Never callable: its plugin has the wrong ABI.",
    .signature = "() -> null",
    .tags = tags,
    .tag_count = 1,
    .params_schema_json = "{\"type\":\"object\",\"properties\":{},\"required\":[],\"additionalProperties\":false}",
    .invoke = invoke,
}};

static const th_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = 99,
    .abi_minor = 0,
    .struct_size = sizeof(th_plugin_desc),
    .task_count = 1,
    .name = "wrong_abi",
    .version = "1.0.0",
    .tasks = tasks,
    .build_info = "hand-written C descriptor",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
