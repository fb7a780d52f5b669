/* Fixture: a plugin built against an older, smaller ABI 1 layout. Its task
 * descriptors end at invoke (no validate), its
 * parameter descriptors at default_json (no schema_json), and its plugin
 * descriptor at build_info (no declaration_error). Two tasks and two
 * parameters: a host stepping through them with its own sizeof would read
 * the second of each at the wrong place. Without validate, the host checks
 * params against params_schema_json itself. */
#include <taskhost/abi.h>

#include <string.h>

typedef struct older_param_desc {
    uint32_t struct_size;
    uint32_t flags;
    const char *name;
    const char *annotation;
    const char *default_json;
} older_param_desc;

typedef struct older_task_desc {
    uint32_t struct_size;
    uint32_t reserved;
    const char *name;
    const char *doc;
    const char *signature;
    const char *const *tags;
    uint32_t tag_count;
    uint32_t param_count;
    const older_param_desc *params;
    const char *params_schema_json;
    double default_timeout_s;
    th_status (*invoke)(const th_host_api *host, th_call *call, const char *params_json, size_t params_len);
} older_task_desc;

typedef struct older_plugin_desc {
    uint32_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;
    uint32_t task_count;
    const char *name;
    const char *version;
    const older_task_desc *tasks;
    th_status (*init)(const th_host_api *host, th_call *call, th_sink *err);
    void (*shutdown)(void);
    const char *build_info;
} older_plugin_desc;

/* The params as received: shows they reached the task unchanged. */
static th_status echo(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    host->set_result(call, params_json, params_len);
    return TH_OK;
}

static th_status hello(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    static const char result[] = "{\"hello\":\"from an older plugin\"}";
    (void)params_json;
    (void)params_len;
    host->set_result(call, result, strlen(result));
    return TH_OK;
}

static const char *const echo_tags[] = {"abi", "older"};

static const older_param_desc echo_params[] = {
    {.struct_size = sizeof(older_param_desc), .flags = TH_PARAM_REQUIRED, .name = "a", .annotation = "int"},
    {.struct_size = sizeof(older_param_desc), .name = "b", .annotation = "string", .default_json = "\"bee\""},
};

static const older_task_desc tasks[] = {
    {
        .struct_size = sizeof(older_task_desc),
        .name = "older_echo",
        .doc = "Returns its params.",
        .signature = "(a: int, b: string = \"bee\") -> json",
        .tags = echo_tags,
        .tag_count = 2,
        .param_count = 2,
        .params = echo_params,
        .params_schema_json = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                              "\"b\":{\"type\":\"string\",\"default\":\"bee\"}},\"required\":[\"a\"],"
                              "\"additionalProperties\":false}",
        .invoke = echo,
    },
    {
        .struct_size = sizeof(older_task_desc),
        .name = "older_hello",
        .doc = "Says hello.",
        .signature = "() -> json",
        .params_schema_json = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
        .invoke = hello,
    },
};

static const older_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = TH_ABI_MAJOR,
    .abi_minor = 0,
    .struct_size = sizeof(older_plugin_desc),
    .task_count = 2,
    .name = "abi_older",
    .version = "1.0.0",
    .tasks = tasks,
    .build_info = "older SDK fixture",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return (const th_plugin_desc *)&descriptor; }
