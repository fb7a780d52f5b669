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
    sizeof(th_task_desc),
    0,
    "wrong_abi_task",
    "Never callable: its plugin has the wrong ABI.",
    "() -> null",
    tags,
    1,
    0,
    NULL,
    "{\"type\":\"object\",\"properties\":{},\"required\":[],\"additionalProperties\":false}",
    0.0,
    invoke,
    NULL,
}};

static const th_plugin_desc descriptor = {
    TH_ABI_MAGIC, 99,   0,    sizeof(th_plugin_desc),      1, "wrong_abi", "1.0.0",
    tasks,        NULL, NULL, "hand-written C descriptor",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
