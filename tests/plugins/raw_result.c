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
    sizeof(th_task_desc),
    0,
    "not_json",
    "Returns text that is not JSON.",
    "() -> json",
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
    TH_ABI_MAGIC, TH_ABI_MAJOR, TH_ABI_MINOR, sizeof(th_plugin_desc),      1, "raw_result", "1.0.0",
    tasks,        NULL,         NULL,         "hand-written C descriptor",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
