/* Fixture: a C plugin written as ABI 1.0 plugins were, its descriptors
 * filled in by position (no designated initializers), with a non-zero default
 * timeout and a validate(). It guards the promise that members of the
 * required block never move within ABI major 1: had default_timeout_s and
 * invoke changed places, the host would read the timeout as a function
 * pointer. */
#include <taskhost/abi.h>

#include <string.h>

static th_status invoke(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    (void)params_json;
    (void)params_len;
    static const char text[] = "{\"abi\": \"1.0\"}";
    host->set_result(call, text, sizeof text - 1);
    return TH_OK;
}

/* Refuses params mentioning "refuse": shows validate was read from its place. */
static th_status validate(const char *params_json, size_t params_len, th_sink *err) {
    static const char why[] = "abi10_echo refuses 'refuse'";
    (void)params_len;
    if (strstr(params_json, "refuse") == NULL) return TH_OK;
    err->write(err->opaque, why, sizeof why - 1);
    return TH_INVALID;
}

static const char *const tags[] = {"abi"};

/* 1.0 plugins knew nothing of the members later minors appended: left out, they are zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const th_task_desc tasks[] = {
    {sizeof(th_task_desc), 0, "abi10_echo", "Written against ABI 1.0, by position.", "() -> json", tags, 1, 0, NULL,
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}", 2.5, invoke, validate},
};

static const th_plugin_desc descriptor = {
    TH_ABI_MAGIC, TH_ABI_MAJOR, 0, sizeof(th_plugin_desc), 1, "abi_1_0", "1.0.0", tasks, NULL, NULL, "by position",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
