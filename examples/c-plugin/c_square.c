/* A plugin in plain C against taskhost/abi.h alone (no C++, no SDK):
 *
 *   cmake -B build -DCMAKE_PREFIX_PATH=<sdk prefix> && cmake --build build
 *   gcc -shared -fPIC -fvisibility=hidden -Wl,--no-undefined \
 *       -Wl,--version-script=<prefix>/share/cmake/taskhost/taskhost_plugin.map \
 *       -o c_square.so c_square.c
 *
 * Its task has no validate(): the host checks each call's parameters against
 * params_schema_json before invoke() runs. */
#include <taskhost/abi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C_SQUARE_LIMIT 1000000LL

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads the integer of the key "n" out of the params object. Enough for this
 * one-key object (the schema forbids other keys); a real plugin would use a
 * JSON parser. The text is not NUL-terminated: only `len` bytes are read. */
static int read_n(const char *text, size_t len, long long *n) {
    const char *end = text + len;
    for (const char *p = text; end - p >= 3; ++p) {
        if (memcmp(p, "\"n\"", 3) != 0) continue;
        p += 3;
        while (p < end && is_space(*p)) ++p;
        if (p == end || *p++ != ':') return 0;
        while (p < end && is_space(*p)) ++p;
        char digits[16];
        size_t k = 0;
        if (p < end && *p == '-') digits[k++] = *p++;
        while (p < end && is_digit(*p) && k < sizeof digits - 1) digits[k++] = *p++;
        if (k == 0 || !is_digit(digits[k - 1])) return 0;
        /* More digits than fit, or not an integer. */
        if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E')) return 0;
        digits[k] = '\0';
        *n = strtoll(digits, NULL, 10);
        return *n >= -C_SQUARE_LIMIT && *n <= C_SQUARE_LIMIT;
    }
    return 0;
}

static th_status square(const th_host_api *host, th_call *call, const char *params_json, size_t params_len) {
    long long n = 0;
    if (!read_n(params_json, params_len, &n)) {
        host->set_error(call, "ValueError", "'n' must be an integer from -1000000 to 1000000", NULL);
        return TH_ERROR;
    }
    char result[64];
    int len = snprintf(result, sizeof result, "{\"n\":%lld,\"square\":%lld}", n, n * n);
    host->set_result(call, result, (size_t)len);
    return TH_OK;
}

static const char *const square_tags[] = {"example", "c"};

static const th_param_desc square_params[] = {{
    .struct_size = sizeof(th_param_desc),
    .flags = TH_PARAM_REQUIRED,
    .name = "n",
    .annotation = "int",
    .default_json = NULL,
    .schema_json = "{\"type\":\"integer\",\"minimum\":-1000000,\"maximum\":1000000}",
}};

static const th_task_desc tasks[] = {{
    .struct_size = sizeof(th_task_desc),
    .name = "c_square",
    .doc = "Squares an integer (a plugin written in C).",
    .signature = "(n: int) -> json",
    .tags = square_tags,
    .tag_count = 2,
    .param_count = 1,
    .params = square_params,
    .params_schema_json = "{\"type\":\"object\","
                          "\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":-1000000,\"maximum\":1000000}},"
                          "\"required\":[\"n\"],\"additionalProperties\":false}",
    .default_timeout_s = 0.0,
    .invoke = square,
    .validate = NULL,
}};

static const th_plugin_desc descriptor = {
    .magic = TH_ABI_MAGIC,
    .abi_major = TH_ABI_MAJOR,
    .abi_minor = TH_ABI_MINOR,
    .struct_size = sizeof(th_plugin_desc),
    .task_count = 1,
    .name = "c_square",
    .version = "1.0.0",
    .tasks = tasks,
    .init = NULL,
    .shutdown = NULL,
    .build_info = "plain C against taskhost/abi.h",
};

TH_EXPORT const th_plugin_desc *taskhost_plugin_v1(void) { return &descriptor; }
