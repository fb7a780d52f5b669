/*
 * taskhost plugin ABI (C only).
 *
 * This header is the whole contract between the taskhost host and a plugin.
 * Nothing but C types crosses it: no C++ objects, no exceptions, no memory
 * freed on the other side. Strings are UTF-8, NUL-terminated unless a length
 * is passed. JSON travels as text.
 *
 * Versioning and compatibility (the promise both sides keep):
 *  - TH_ABI_MAJOR changes when an existing member or function changes: its
 *    meaning, type or position, a member removed, a struct made smaller, a
 *    function's signature changed. The host refuses a plugin whose major
 *    differs from its own.
 *  - TH_ABI_MINOR grows when the ABI grows compatibly: members appended at
 *    the end of a struct, new enum values, new host services appended to
 *    th_host_api. Nothing else changes within one major.
 *  - Every struct carries its struct_size: sizeof() of the struct as the
 *    side that filled it was built. A reader uses a member only when
 *    struct_size covers it (TH_DESC_HAS; TH_HOST_HAS for the host table).
 *  - Arrays of descriptors (th_plugin_desc.tasks, th_task_desc.params) are
 *    walked with the plugin's struct_size as the stride, so element i is at
 *    (const char *)array + i * struct_size. Every element of one array
 *    declares the same struct_size; the host refuses an array that does not,
 *    and one smaller than the members every ABI 1 plugin has (the
 *    TH_*_DESC_MIN_SIZE below).
 *  - An older minor (smaller structs): the members it lacks read as zero /
 *    NULL, which always means "not provided". A newer minor (larger structs):
 *    the members the reader does not know are ignored.
 *  - In C, fill descriptors with designated initializers (.name = "x"):
 *    members appended later then start zero, and order never matters.
 *
 * A plugin exports exactly one symbol, TH_PLUGIN_ENTRY_NAME, returning a
 * pointer to a static th_plugin_desc that stays valid while the library is
 * loaded. The C++ SDK (sdk.hpp) generates it.
 */
#ifndef TASKHOST_ABI_H
#define TASKHOST_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TH_ABI_MAGIC 0x54534B48u /* "TSKH" */
#define TH_ABI_MAJOR 1u
#define TH_ABI_MINOR 5u

#define TH_PLUGIN_ENTRY_NAME "taskhost_plugin_v1"

#if defined(__GNUC__)
#define TH_EXPORT __attribute__((visibility("default")))
#else
#define TH_EXPORT
#endif

/* ---- Byte sinks: how data comes back without crossing allocators -------- */

/* The receiver of data owns the sink; the producer calls write() zero or
 * more times. Whoever allocated the memory behind `opaque` frees it. */
typedef struct th_sink {
    void *opaque;
    void (*write)(void *opaque, const char *data, size_t len);
} th_sink;

/* ---- Status codes -------------------------------------------------------- */

typedef enum th_status {
    TH_OK = 0,
    TH_ERROR = 1, /* the operation failed; details were written */
    TH_NOT_FOUND = 2,
    TH_INVALID = 3, /* bad argument (e.g. malformed id or JSON) */
    TH_CANCELLED = 4,
    TH_UNSUPPORTED = 5 /* service not offered by this host */
} th_status;

/* ---- Log levels ---------------------------------------------------------- */

typedef enum th_log_level {
    TH_LOG_TRACE = 0,
    TH_LOG_DEBUG = 1,
    TH_LOG_INFO = 2,
    TH_LOG_WARN = 3,
    TH_LOG_ERROR = 4
} th_log_level;

/* ---- Tracebacks ---------------------------------------------------------- */

/* One frame of a stack, innermost first, as an address in a loaded module:
 * what the host needs to symbolize it, and what a person needs to run
 * `addr2line -e <module file> <offset>` offline. */
typedef struct th_frame {
    const char *module;   /* the file the loader knows the module by (dladdr's dli_fname) */
    const char *build_id; /* the module's GNU build-id in hex, or "" if it has none */
    uint64_t offset;      /* address - the module's load bias: a link-time address.
                             For a caller's frame it points into the call instruction
                             (return address - 1), so it names the calling line. */
} th_frame;

enum th_trace_flags {
    /* The frames were recorded where the exception was thrown; otherwise
     * where the plugin caught it (the throw site was not seen). */
    TH_TRACE_AT_THROW = 1u << 0,
    /* ABI 1.4. The error is final: the job fails now even if its retry
     * policy has attempts left (an exception its task does not retry on). */
    TH_ERROR_FINAL = 1u << 1
};

/* ---- Reading a struct whose size the other side chose --------------------- */

/* Non-zero when `ptr` (a struct of type `type`, filled by the other side)
 * declares a struct_size that covers `member`. Guard every member that is not
 * in the struct's minimum with it. */
#define TH_DESC_HAS(ptr, type, member) \
    ((ptr) != NULL && (size_t)(ptr)->struct_size >= offsetof(type, member) + sizeof((ptr)->member))

/* ---- One task invocation, as seen by the plugin -------------------------- */

/* Opaque to the plugin; passed back to every host service. */
typedef struct th_call th_call;

/*
 * Host services. Append-only: a plugin must check struct_size before using a
 * member (TH_HOST_HAS(host, member)). Every function is thread-safe and may
 * be called only during the invoke() that received `call`.
 */
typedef struct th_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    /* Result of the call. Exactly one of these should be called; the last
     * call wins. Text is copied by the host before returning. */
    void (*set_result)(th_call *call, const char *json, size_t len);
    void (*set_error)(th_call *call, const char *type, const char *message, const char *traceback);

    /* Context: job id (26-char ULID), cooperative cancellation, progress. */
    const char *(*job_id)(th_call *call);
    int (*is_cancelled)(th_call *call); /* non-zero once cancel was asked */
    void (*report_progress)(th_call *call, double fraction /* 0..1, <0 = unknown */,
                            const char *message /* may be NULL */);
    void (*log)(th_call *call, th_log_level level, const char *message);

    /* Artifacts. `data_json` is any JSON value; parent_id may be NULL.
     * On success out_id receives a NUL-terminated 26-char ULID. */
    th_status (*artifact_save)(th_call *call, const char *data_json, size_t len, const char *parent_id, char out_id[27],
                               th_sink *err);
    /* Writes the artifact's full JSON record (id, data, parent_id, level, ...). */
    th_status (*artifact_get)(th_call *call, const char *id, th_sink *out, th_sink *err);

    /* Database: SQL on the host's database. `params_json` is a JSON array of
     * positional bind values or NULL. Rows are written to `out` as a JSON
     * array of objects (column name → value). */
    th_status (*db_query)(th_call *call, const char *sql, const char *params_json, th_sink *out, th_sink *err);
    /* Session: a transaction scope on the same connection db_query uses
     * during this call. end(commit=0) rolls back. */
    th_status (*session_begin)(th_call *call, th_sink *err);
    th_status (*session_end)(th_call *call, int commit, th_sink *err);
    /* Human-readable location of the database ("sqlite:///path" or
     * "sqlite://:memory:"). */
    const char *(*database_url)(th_call *call);

    /* Scheduler: submit another task as a job; out_job_id gets its ULID. */
    th_status (*schedule)(th_call *call, const char *task_name, const char *params_json, char out_job_id[27],
                          th_sink *err);
    /* Writes the job record JSON of `job_id`. */
    th_status (*job_get)(th_call *call, const char *job_id, th_sink *out, th_sink *err);

    /* ABI 1.1. As set_error, with the traceback as frames (innermost first,
     * `flags` from th_trace_flags): the host symbolizes them (function, file,
     * line) where debug info allows and keeps module, build-id and offset. */
    void (*set_error_frames)(th_call *call, const char *type, const char *message, const th_frame *frames,
                             size_t frame_count, uint32_t flags);
} th_host_api;

#define TH_HOST_HAS(host, member) (TH_DESC_HAS(host, th_host_api, member) && (host)->member != NULL)

/* ---- Descriptors --------------------------------------------------------- */

enum th_param_flags {
    TH_PARAM_REQUIRED = 1u << 0, /* caller must send it */
    TH_PARAM_INJECTED = 1u << 1  /* provided by the host, never by the caller */
};

enum th_task_flags {
    /* Running a job of it twice does no harm: a job whose host was lost,
       or whose worker process crashed, while it ran is attempted again (up
       to retry_max_attempts, or 3 without a retry policy) instead of
       failed. */
    TH_TASK_RETRY_SAFE = 1u << 0
};

enum th_retry_flags {
    TH_RETRY_EXPONENTIAL = 1u << 0, /* each wait doubles, up to retry_max_delay_s */
    TH_RETRY_JITTER = 1u << 1       /* each wait varies by up to 20 % either way */
};

typedef struct th_param_desc {
    uint32_t struct_size;
    uint32_t flags; /* th_param_flags */
    const char *name;
    const char *annotation;   /* type as written for people, e.g. "int" */
    const char *default_json; /* JSON text of the default, or NULL */
    /* ---- optional: read only when struct_size covers it ---- */
    const char *schema_json; /* JSON Schema of the value, or NULL if injected */
} th_param_desc;

/*
 * invoke(): run the task. params_json is a JSON object (never NULL, "{}" when
 * nothing was sent). The plugin reports through host->set_result / set_error
 * and returns TH_OK or TH_ERROR. It must not throw or longjmp.
 *
 * validate(): optional, pure, thread-safe. Checks that params_json binds to the
 * task's parameters exactly as invoke() would. Returns TH_OK, or TH_INVALID
 * with a one-line message naming the parameter written to `err`. Without it,
 * the host checks params against params_schema_json itself.
 *
 * JSON Schemas (params_schema_json, th_param_desc.schema_json) are draft-07.
 * The host refuses a plugin whose schema is not JSON or not a JSON Schema.
 */
typedef struct th_task_desc {
    uint32_t struct_size;
    uint32_t reserved;
    const char *name;      /* ^[A-Za-z0-9_-]+$ */
    const char *doc;       /* may be NULL */
    const char *signature; /* e.g. "(name: std::string = \"World\") -> json" */
    const char *const *tags;
    uint32_t tag_count;
    uint32_t param_count;
    const th_param_desc *params;    /* param_count elements, stride params[0].struct_size */
    const char *params_schema_json; /* JSON Schema of the caller's params object, or NULL */
    double default_timeout_s;       /* <= 0: no timeout */
    th_status (*invoke)(const th_host_api *host, th_call *call, const char *params_json, size_t params_len);
    /* ---- optional: read only when struct_size covers them ---- */
    th_status (*validate)(const char *params_json, size_t params_len, th_sink *err);
    /* ABI 1.2 */
    uint32_t flags; /* th_task_flags */
    /* ABI 1.3 (zero before): a job's priority when its submitter gives none,
       -10..10, higher first; the host clamps it to that range. */
    int32_t priority;
    /* ABI 1.4 (zero before: a failure is final). A job that fails runs
       again, up to retry_max_attempts attempts in all (0 and 1: none),
       retry_delay_s after the failure (doubling with TH_RETRY_EXPONENTIAL,
       up to retry_max_delay_s); the host clamps them to its limits. */
    uint32_t retry_max_attempts;
    uint32_t retry_flags; /* th_retry_flags */
    double retry_delay_s;
    double retry_max_delay_s;
    /* ABI 1.5 (NULL before: none). A recurring schedule the plugin declares:
       the host runs the task with params {} whenever this cron expression
       fires (5 fields, or 6 with seconds first, or @hourly-style names), in
       the time zone every_tz (an IANA name; NULL: UTC). People may pause it
       through the API. The host refuses a plugin whose expression or zone
       it cannot read. */
    const char *every_cron;
    const char *every_tz;
} th_task_desc;

typedef struct th_plugin_desc {
    uint32_t magic;     /* TH_ABI_MAGIC */
    uint16_t abi_major; /* TH_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;
    uint32_t struct_size; /* sizeof(th_plugin_desc) at build time */
    uint32_t task_count;
    const char *name;
    const char *version;
    const th_task_desc *tasks; /* task_count elements, stride tasks[0].struct_size */
    /* ---- optional: read only when struct_size covers them ---- */
    /* Optional. Called once after validation and before any invoke. `call`
     * is a load-time call (empty job id) usable with the database and log
     * services. A non-TH_OK result refuses the plugin; write why to err. */
    th_status (*init)(const th_host_api *host, th_call *call, th_sink *err);
    /* Optional. Called once when the host stops using this generation
     * (after the last invoke has returned). */
    void (*shutdown)(void);
    const char *build_info; /* compiler / SDK fingerprint, for people */
    /* Since 1.1. Non-NULL: the plugin's declaration is wrong (e.g. a task
     * names too few parameters) and this says how, in one line. The host
     * refuses the plugin with it ("invalid declaration: ...") and calls
     * nothing in it. The SDK's init also returns it, for 1.0 hosts. */
    const char *declaration_error;
} th_plugin_desc;

/* The members every ABI 1 descriptor has: the host refuses a struct_size
 * below these. Members after them are optional (TH_DESC_HAS). */
#define TH_PLUGIN_DESC_MIN_SIZE offsetof(th_plugin_desc, init)
#define TH_TASK_DESC_MIN_SIZE offsetof(th_task_desc, validate)
#define TH_PARAM_DESC_MIN_SIZE offsetof(th_param_desc, schema_json)

typedef const th_plugin_desc *(*th_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* TASKHOST_ABI_H */
