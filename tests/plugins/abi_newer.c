/* Fixture: a plugin built against a newer ABI 1 minor: each descriptor is
 * the host's struct followed by members the host does not know, filled
 * with values that would break it if it read them. Two tasks and two
 * parameters, so the host must step through them by the plugin's
 * struct_size. newer_echo has its own validate; newer_timeout has none
 * (the host checks its schema) and a default timeout. */
#include <taskhost/abi.h>

#include <string.h>

typedef struct newer_param_desc {
    th_param_desc known;
    const char *future_text;
    uint64_t future_bits;
} newer_param_desc;

typedef struct newer_task_desc {
    th_task_desc known;
    const char *future_text;
    double future_number;
    void (*future_fn)(void);
} newer_task_desc;

typedef struct newer_plugin_desc {
    th_plugin_desc known;
    const char *future_text;
    uint64_t future_bits;
} newer_plugin_desc;

#define FUTURE_TEXT "a member from the future: never read"
#define FUTURE_BITS 0xdeadbeefdeadbeefu

static void future_fn(void) {}

static th_status echo(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    host->set_result(call, params_json, params_len);
    return TH_OK;
}

/* Refuses a params text mentioning "refuse": shows validate was read from
 * the right place. */
static th_status echo_validate(const char *params_json, size_t params_len, th_sink *err) {
    static const char why[] = "parameter 'x': the newer plugin refuses this";
    for (size_t i = 0; i + 6 <= params_len; ++i) {
        if (memcmp(params_json + i, "refuse", 6) == 0) {
            err->write(err->opaque, why, sizeof why - 1);
            return TH_INVALID;
        }
    }
    return TH_OK;
}

static th_status timeout_task(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    static const char result[] = "{\"newer\":true}";
    (void)params_json;
    (void)params_len;
    host->set_result(call, result, strlen(result));
    return TH_OK;
}

static const char *const echo_tags[] = {"abi", "newer"};

static const newer_param_desc echo_params[] = {
    {.known = {.struct_size = sizeof(newer_param_desc),
               .flags = TH_PARAM_REQUIRED,
               .name = "x",
               .annotation = "int",
               .schema_json = "{\"type\":\"integer\"}"},
     .future_text = FUTURE_TEXT,
     .future_bits = FUTURE_BITS},
    {.known = {.struct_size = sizeof(newer_param_desc),
               .name = "y",
               .annotation = "string",
               .default_json = "\"why\"",
               .schema_json = "{\"type\":\"string\",\"default\":\"why\"}"},
     .future_text = FUTURE_TEXT,
     .future_bits = FUTURE_BITS},
};

static const newer_task_desc tasks[] = {
    {.known = {.struct_size = sizeof(newer_task_desc),
               .name = "newer_echo",
               .doc = "Returns its params.",
               .signature = "(x: int, y: string = \"why\") -> json",
               .tags = echo_tags,
               .tag_count = 2,
               .param_count = 2,
               .params = &echo_params[0].known,
               .params_schema_json = "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},"
                                     "\"y\":{\"type\":\"string\",\"default\":\"why\"}},\"required\":[\"x\"],"
                                     "\"additionalProperties\":false}",
               .invoke = echo,
               .validate = echo_validate},
     .future_text = FUTURE_TEXT,
     .future_number = -1.0,
     .future_fn = future_fn},
    {.known = {.struct_size = sizeof(newer_task_desc),
               .name = "newer_timeout",
               .doc = "Has a default timeout and no validate.",
               .signature = "() -> json",
               .params_schema_json = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
               .invoke = timeout_task,
               .default_timeout_s = 7.5},
     .future_text = FUTURE_TEXT,
     .future_number = -1.0,
     .future_fn = future_fn},
};

static const newer_plugin_desc descriptor = {
    .known = {.magic = TH_ABI_MAGIC,
              .abi_major = TH_ABI_MAJOR,
              .abi_minor = TH_ABI_MINOR + 1,
              .struct_size = sizeof(newer_plugin_desc),
              .task_count = 2,
              .name = "abi_newer",
              .version = "1.0.0",
              .tasks = &tasks[0].known,
              .build_info = "newer SDK fixture"},
    .future_text = FUTURE_TEXT,
    .future_bits = FUTURE_BITS,
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor.known; }
