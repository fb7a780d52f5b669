// Unit tests of the C++ SDK (sdk/include/taskhost/sdk.hpp), driven only
// through the C ABI: descriptors are read as the host reads them and tasks are
// invoked with a fake th_host_api that records what the plugin does.
#include <taskhost/sdk.hpp>

#include <doctest/doctest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using taskhost::json;
using namespace taskhost;

namespace sdk_test {

// ---- A fake host ---------------------------------------------------------------

void put(th_sink *sink, std::string_view text) {
    if (sink != nullptr && sink->write != nullptr) sink->write(sink->opaque, text.data(), text.size());
}

struct Fake {
    th_host_api api{};

    // What the plugin reported.
    std::optional<std::string> result;
    struct Error {
        std::string type, message, traceback;
    };
    std::optional<Error> error;
    int result_calls = 0, error_calls = 0;

    // Context.
    std::string job = "01JOBAAAAAAAAAAAAAAAAAAAAA";
    int cancel_after = -1;  // is_cancelled() answers 1 after this many calls; -1 never
    int cancel_checks = 0;
    std::vector<std::pair<double, std::string>> progress;  // message "<null>" when NULL
    std::vector<std::pair<int, std::string>> logs;

    // Artifacts.
    std::map<std::string, std::pair<std::string, std::optional<std::string>>> artifacts;
    bool fail_artifact_save = false;
    int next_id = 0;

    // Database and session. INSERTs count rows; inside a session they are
    // pending until commit, and dropped on rollback.
    std::string url = "sqlite://:memory:";
    std::vector<std::pair<std::string, std::optional<std::string>>> queries;  // sql, params (NULL -> nullopt)
    json rows = json::array();                                                // answer to any other query
    bool fail_query = false;
    bool in_session = false;
    int committed = 0, pending = 0;
    std::vector<std::string> session_events;
    bool fail_begin = false, fail_commit = false;

    // Scheduler.
    std::vector<std::pair<std::string, std::string>> scheduled;  // task, params

    Fake() {
        api.struct_size = sizeof(th_host_api);
        api.abi_major = TH_ABI_MAJOR;
        api.abi_minor = TH_ABI_MINOR;
        api.set_result = [](th_call *c, const char *text, std::size_t len) {
            auto &f = of(c);
            f.result = std::string(text, len);
            ++f.result_calls;
        };
        api.set_error = [](th_call *c, const char *type, const char *message, const char *traceback) {
            auto &f = of(c);
            f.error = Error{type, message, traceback};
            ++f.error_calls;
        };
        api.job_id = [](th_call *c) { return of(c).job.c_str(); };
        api.is_cancelled = [](th_call *c) {
            auto &f = of(c);
            ++f.cancel_checks;
            if (f.cancel_after < 0) return 0;
            if (f.cancel_after == 0) return 1;
            --f.cancel_after;
            return 0;
        };
        api.report_progress = [](th_call *c, double fraction, const char *message) {
            of(c).progress.emplace_back(fraction, message != nullptr ? message : "<null>");
        };
        api.log = [](th_call *c, th_log_level level, const char *message) {
            of(c).logs.emplace_back(static_cast<int>(level), message);
        };
        api.artifact_save = [](th_call *c, const char *data, std::size_t len, const char *parent, char out[27],
                               th_sink *err) {
            auto &f = of(c);
            if (f.fail_artifact_save) {
                put(err, "disk full");
                return TH_ERROR;
            }
            const std::string id = f.make_id("A");
            f.artifacts[id] = {std::string(data, len),
                               parent != nullptr ? std::optional<std::string>(parent) : std::nullopt};
            std::memcpy(out, id.c_str(), 27);
            return TH_OK;
        };
        api.artifact_get = [](th_call *c, const char *id, th_sink *out, th_sink *err) {
            auto &f = of(c);
            const auto it = f.artifacts.find(id);
            if (it == f.artifacts.end()) {
                put(err, std::string("artifact ") + id + " not found");
                return TH_NOT_FOUND;
            }
            const json record = {{"id", id},
                                 {"data", json::parse(it->second.first)},
                                 {"parent_id", it->second.second ? json(*it->second.second) : json(nullptr)},
                                 {"level", it->second.second ? 1 : 0}};
            put(out, record.dump());
            return TH_OK;
        };
        api.db_query = [](th_call *c, const char *sql, const char *params, th_sink *out, th_sink *err) {
            auto &f = of(c);
            f.queries.emplace_back(sql, params != nullptr ? std::optional<std::string>(params) : std::nullopt);
            if (f.fail_query) {
                put(err, "no such table: nowhere");
                return TH_ERROR;
            }
            const std::string_view s = sql;
            if (s.starts_with("INSERT")) {
                ++(f.in_session ? f.pending : f.committed);
                put(out, "[]");
            } else if (s.find("COUNT(*) AS n ") != std::string_view::npos) {
                put(out, json::array({{{"n", f.committed + f.pending}}}).dump());
            } else if (s.find("COUNT(*) AS user_count") != std::string_view::npos) {
                put(out, R"([{"user_count":3}])");
            } else {
                put(out, f.rows.dump());
            }
            return TH_OK;
        };
        api.session_begin = [](th_call *c, th_sink *err) {
            auto &f = of(c);
            f.session_events.push_back("begin");
            if (f.fail_begin) {
                put(err, "database is locked");
                return TH_ERROR;
            }
            f.in_session = true;
            return TH_OK;
        };
        api.session_end = [](th_call *c, int commit, th_sink *err) {
            auto &f = of(c);
            f.session_events.push_back(commit != 0 ? "commit" : "rollback");
            f.in_session = false;
            if (commit != 0 && f.fail_commit) {
                f.pending = 0;
                put(err, "disk I/O error");
                return TH_ERROR;
            }
            if (commit != 0) f.committed += f.pending;
            f.pending = 0;
            return TH_OK;
        };
        api.database_url = [](th_call *c) { return of(c).url.c_str(); };
        api.schedule = [](th_call *c, const char *task, const char *params, char out[27], th_sink *) {
            auto &f = of(c);
            f.scheduled.emplace_back(task, params);
            const std::string id = f.make_id("J");
            std::memcpy(out, id.c_str(), 27);
            return TH_OK;
        };
        api.job_get = [](th_call *c, const char *id, th_sink *out, th_sink *err) {
            auto &f = of(c);
            for (std::size_t i = 0; i < f.scheduled.size(); ++i) {
                if (f.make_id_for("J", static_cast<int>(i + 1)) == id) {
                    put(out, json({{"id", id}, {"status", "pending"}}).dump());
                    return TH_OK;
                }
            }
            put(err, "no such job");
            return TH_NOT_FOUND;
        };
    }
    Fake(const Fake &) = delete;
    Fake &operator=(const Fake &) = delete;

    static Fake &of(th_call *c) { return *reinterpret_cast<Fake *>(c); }
    th_call *call() { return reinterpret_cast<th_call *>(this); }

    std::string make_id_for(const std::string &prefix, int n) const {
        const std::string num = std::to_string(n);
        return prefix + std::string(26 - prefix.size() - num.size(), '0') + num;
    }
    std::string make_id(const std::string &prefix) { return make_id_for(prefix, ++next_id); }
    json result_json() const { return json::parse(result.value()); }
};

// ---- Reading descriptors -----------------------------------------------------------

const th_task_desc &task_of(const th_plugin_desc *plugin, std::string_view name) {
    for (std::uint32_t i = 0; i < plugin->task_count; ++i)
        if (name == plugin->tasks[i].name) return plugin->tasks[i];
    throw std::runtime_error("no task " + std::string(name));
}

const th_param_desc &param_of(const th_task_desc &task, std::string_view name) {
    for (std::uint32_t i = 0; i < task.param_count; ++i)
        if (name == task.params[i].name) return task.params[i];
    throw std::runtime_error("no param " + std::string(name));
}

std::vector<std::string> tags_of(const th_task_desc &task) {
    return std::vector<std::string>(task.tags, task.tags + task.tag_count);
}

std::string str_or(const char *s, const char *fallback = "<NULL>") { return s != nullptr ? s : fallback; }

struct Collect {
    std::string text;
    th_sink sink{this, [](void *o, const char *d, std::size_t n) { static_cast<Collect *>(o)->text.append(d, n); }};
};

th_status invoke(const th_task_desc &task, Fake &fake, const std::string &params) {
    return task.invoke(&fake.api, fake.call(), params.data(), params.size());
}

std::pair<th_status, std::string> validate(const th_task_desc &task, const std::string &params) {
    Collect err;
    const th_status s = task.validate(params.data(), params.size(), &err.sink);
    return {s, err.text};
}

std::pair<th_status, std::string> init(const th_plugin_desc *plugin, Fake &fake) {
    Collect err;
    const th_status s = plugin->init(&fake.api, fake.call(), &err.sink);
    return {s, err.text};
}

// The params must be refused with exactly `message`, identically by
// validate() and invoke().
void expect_invalid(const th_task_desc &task, const std::string &params, const std::string &message) {
    CAPTURE(params);
    const auto [status, text] = validate(task, params);
    CHECK(status == TH_INVALID);
    CHECK(text == message);
    Fake fake;
    CHECK(invoke(task, fake, params) == TH_ERROR);
    CHECK(fake.result_calls == 0);
    REQUIRE(fake.error.has_value());
    CHECK(fake.error->type == "taskhost::InvalidParams");
    CHECK(fake.error->message == message);
    CHECK(fake.error->traceback.empty());
}

// Runs a task that must succeed (and validate) and returns its result.
json run_ok(const th_task_desc &task, const std::string &params) {
    CAPTURE(params);
    CHECK(validate(task, params).first == TH_OK);
    Fake fake;
    const th_status s = invoke(task, fake, params);
    if (fake.error) FAIL_CHECK(fake.error->type << ": " << fake.error->message);
    CHECK(s == TH_OK);
    REQUIRE(fake.result.has_value());
    return fake.result_json();
}

// ---- Plugins under test -----------------------------------------------------------------

json greet_user(std::string name) { return {{"message", "Hello, " + name + "!"}}; }
json add(int a, int b) { return {{"result", a + b}}; }
json store_result(Artifacts &artifacts, json data) { return {{"artifact_id", artifacts.save(data)}}; }
void touch(Context &context) { context.info("touched"); }

struct BasicsTag {};
const th_plugin_desc *basics() {
    return build_plugin<BasicsTag>("basics", "1.2.3",
                                   task("greet_user", greet_user)
                                       .doc("Simple task that returns a greeting.")
                                       .tags({"demo", "simple"})
                                       .param("name", "World"),
                                   task("add", add)
                                       .tags({"math"})
                                       .params("a", "b")
                                       .timeout(2.5)
                                       .priority(3)
                                       .retry(5, Backoff::exponential(0.5, 30)),
                                   task("store_result", store_result)
                                       .tag("storage")
                                       .params("data")
                                       .priority(-99)
                                       .retry(3, Backoff::fixed(2))
                                       .retry_on<std::range_error>(),
                                   task("touch", touch).every("*/5 * * * *", "Europe/Oslo"),
                                   task("double_it", [](int x) { return x * 2; }).params("x"));
}

json all_types(bool b, std::int8_t i8, std::uint8_t u8, std::int16_t i16, std::uint16_t u16, int i32, unsigned u32,
               std::int64_t i64, std::uint64_t u64, float f, double d, std::string s, json j, std::vector<int> v,
               std::vector<std::vector<std::string>> grid, std::optional<int> oi,
               std::optional<std::vector<std::optional<int>>> nested, std::map<std::string, double> m) {
    json n = nullptr;
    if (nested) {
        n = json::array();
        for (const auto &x : *nested) n.push_back(x ? json(*x) : json(nullptr));
    }
    return {{"b", b},      {"i8", i8},   {"u8", u8},     {"i16", i16},
            {"u16", u16},  {"i32", i32}, {"u32", u32},   {"i64", i64},
            {"u64", u64},  {"f", f},     {"d", d},       {"s", s},
            {"j", j},      {"v", v},     {"grid", grid}, {"oi", oi ? json(*oi) : json(nullptr)},
            {"nested", n}, {"m", m}};
}

struct TypesTag {};
const th_plugin_desc *types() {
    return build_plugin<TypesTag>(
        "types", "1.0.0",
        task("all_types", all_types)
            .params("b", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f", "d", "s", "j", "v", "grid", "oi",
                    "nested", "m"),
        task("u8", [](std::uint8_t n) { return json(n); }).params("n"),
        task("int", [](int a) { return json(a); }).params("a"),
        task("i64", [](std::int64_t v) { return json(v); }).params("v"),
        task("flag", [](bool b) { return json(b); }).params("b"),
        task("str", [](const std::string &s) { return json(s); }).params("s"),
        task("flt", [](float f) { return json(f); }).params("f"),
        task("vec", [](std::vector<int> xs) { return json(xs); }).params("xs"),
        task("grid", [](std::vector<std::vector<std::string>> g) { return json(g); }).params("grid"),
        task("dict", [](std::map<std::string, double> m) { return json(m); }).params("m"),
        task("opt", [](std::optional<int> o) { return o ? json(*o) : json("none"); }).params("o"),
        task("opt_default", [](std::optional<int> o) { return o ? json(*o) : json("none"); }).param("o", 7),
        task("with_default",
             [](int n, std::string label) {
                 return json{{"n", n}, {"label", label}};
             })
            .param("n", 5)
            .param("label", "x"),
        task("mixed", [](Database &, int a, Context &, std::string b) {
            return json{{"a", a}, {"b", b}};
        }).params("a", "b"));
}

struct CustomError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ErrorsTag {};
const th_plugin_desc *errors() {
    return build_plugin<ErrorsTag>(
        "errors", "1.0.0",
        task("invalid_argument", []() -> json { throw std::invalid_argument("Something went wrong"); }),
        task("runtime_error", []() -> json { throw std::runtime_error("boom"); }),
        task("custom", []() -> json { throw CustomError("custom failure"); }),
        task("throws_int", []() -> json { throw 42; }),
        task("throws_string", []() -> json { throw std::string("a thrown string"); }),
        task("cancellable",
             [](Context &context) {
                 for (int i = 0; i < 1000; ++i) context.throw_if_cancelled();
                 return json("finished");
             }),
        task("user_invalid_params", []() -> json { throw InvalidParams("thrown by the task"); }));
}

struct ServicesTag {};
const th_plugin_desc *services() {
    return build_plugin<ServicesTag>(
        "services", "1.0.0",
        task("context",
             [](Context &c) {
                 c.progress(0.25, "a quarter");
                 c.progress(-1);
                 c.log(LogLevel::debug, "dbg");
                 c.info("inf");
                 c.warn("wrn");
                 c.error("err");
                 return json{{"job_id", c.job_id()}, {"cancelled", c.cancelled()}};
             }),
        task("artifacts",
             [](Artifacts &a) {
                 const std::string parent = a.save({{"k", "v"}});
                 const std::string child = a.save(json::array({1, 2}), parent);
                 return json{{"parent", parent}, {"child", child}, {"record", a.get(child)}};
             }),
        task("artifact_missing", [](Artifacts &a) { return a.get("01NOSUCHARTIFACTXXXXXXXXXX"); }),
        task("database",
             [](const Database &db) {
                 const json rows = db.query("SELECT * FROM t WHERE a = ? AND b = ?", json::array({1, "x"}));
                 db.exec("DELETE FROM t");
                 return json{{"rows", rows}, {"url", db.url()}};
             }),
        task("database_fails", [](Database db) { return db.query("SELECT * FROM nowhere"); }),
        task("session_ok",
             [](Session &s) {
                 s.exec("INSERT INTO t VALUES (1)");
                 return json("ok");
             }),
        task("session_throws",
             [](Session &s) -> json {
                 s.exec("INSERT INTO t VALUES (1)");
                 throw std::runtime_error("after insert");
             }),
        task("session_param", [](Session &s, int n) { return json(n + static_cast<int>(s.query("SELECT 1").size())); })
            .params("n"),
        task("scheduler",
             [](Scheduler &s) {
                 const std::string id = s.submit("greet_user", {{"name", "Child"}});
                 return json{{"id", id}, {"job", s.job(id)}, {"default_params", s.submit("hello")}};
             }),
        task("all", [](Database &, Session &, Artifacts &, Scheduler &, Context &c) { return json(c.job_id()); }));
}

// ---- Descriptor ---------------------------------------------------------------------------

TEST_CASE("descriptor header: magic, ABI, names, build info") {
    const th_plugin_desc *p = basics();
    REQUIRE(p != nullptr);
    CHECK(p == basics());  // built once
    CHECK(p->magic == TH_ABI_MAGIC);
    CHECK(p->abi_major == TH_ABI_MAJOR);
    CHECK(p->abi_minor == TH_ABI_MINOR);
    CHECK(p->struct_size == sizeof(th_plugin_desc));
    CHECK(std::string(p->name) == "basics");
    CHECK(std::string(p->version) == "1.2.3");
    CHECK(p->task_count == 5);
    CHECK((p->init == nullptr));  // no init hook and nothing to report
    CHECK((p->shutdown == nullptr));
    CHECK(p->declaration_error == nullptr);
    const std::string info = str_or(p->build_info);
    CHECK(info.find("ABI " + std::to_string(TH_ABI_MAJOR) + '.' + std::to_string(TH_ABI_MINOR)) != std::string::npos);
    CHECK(info.find("nlohmann_json 3.") != std::string::npos);
#if defined(__clang__)
    CHECK(info.find("clang " __clang_version__) != std::string::npos);
#else
    CHECK(info.find(__VERSION__) != std::string::npos);
#endif
    for (std::uint32_t i = 0; i < p->task_count; ++i) {
        CHECK(p->tasks[i].struct_size == sizeof(th_task_desc));
        CHECK((p->tasks[i].invoke != nullptr));
        CHECK((p->tasks[i].validate != nullptr));
        for (std::uint32_t k = 0; k < p->tasks[i].param_count; ++k)
            CHECK(p->tasks[i].params[k].struct_size == sizeof(th_param_desc));
    }
}

TEST_CASE("task metadata: doc, tags, timeout, signature, parameters, schemas") {
    const th_plugin_desc *p = basics();

    const auto &greet = task_of(p, "greet_user");
    CHECK(str_or(greet.doc) == "Simple task that returns a greeting.");
    CHECK(tags_of(greet) == std::vector<std::string>{"demo", "simple"});
    CHECK(std::string(greet.signature) == R"((name: std::string = "World") -> json)");
    CHECK(greet.default_timeout_s == 0);
    CHECK(greet.priority == 0);
    CHECK(task_of(p, "add").priority == 3);
    CHECK(task_of(p, "store_result").priority == -10);  // clamped to the range
    // Retry policies: none by default.
    CHECK(greet.retry_max_attempts == 0);
    const auto &retried = task_of(p, "add");
    CHECK(retried.retry_max_attempts == 5);
    CHECK(retried.retry_flags == (TH_RETRY_EXPONENTIAL | TH_RETRY_JITTER));
    CHECK(retried.retry_delay_s == 0.5);
    CHECK(retried.retry_max_delay_s == 30);
    const auto &store_task = task_of(p, "store_result");
    CHECK(store_task.retry_max_attempts == 3);
    CHECK(store_task.retry_flags == 0);
    CHECK(store_task.retry_delay_s == 2);
    // A schedule: only where one is declared.
    CHECK(greet.every_cron == nullptr);
    CHECK(greet.every_tz == nullptr);
    const auto &touched = task_of(p, "touch");
    CHECK(str_or(touched.every_cron) == "*/5 * * * *");
    CHECK(str_or(touched.every_tz) == "Europe/Oslo");
    REQUIRE(greet.param_count == 1);
    const auto &name = greet.params[0];
    CHECK(std::string(name.name) == "name");
    CHECK(std::string(name.annotation) == "std::string");
    CHECK(str_or(name.default_json) == R"("World")");
    CHECK(name.flags == 0);
    CHECK(json::parse(name.schema_json) == json::parse(R"({"type":"string","default":"World"})"));
    CHECK(json::parse(greet.params_schema_json) ==
          json::parse(R"({"type":"object","properties":{"name":{"type":"string","default":"World"}},
                          "required":[],"additionalProperties":false})"));

    const auto &add_task = task_of(p, "add");
    CHECK(add_task.doc == nullptr);
    CHECK(tags_of(add_task) == std::vector<std::string>{"math"});
    CHECK(add_task.default_timeout_s == 2.5);
    CHECK(std::string(add_task.signature) == "(a: int, b: int) -> json");
    CHECK(param_of(add_task, "a").flags == TH_PARAM_REQUIRED);
    CHECK(param_of(add_task, "b").default_json == nullptr);
    const json int_schema = {{"type", "integer"}, {"minimum", -2147483648LL}, {"maximum", 2147483647}};
    CHECK(json::parse(param_of(add_task, "a").schema_json) == int_schema);
    const json add_schema = json::parse(add_task.params_schema_json);
    CHECK(add_schema["required"] == json::array({"a", "b"}));
    CHECK(add_schema["additionalProperties"] == false);
    CHECK(add_schema["properties"]["b"] == int_schema);
    // Properties keep declaration order for people reading the schema.
    CHECK(std::string(add_task.params_schema_json).find("\"a\"") <
          std::string(add_task.params_schema_json).find("\"b\""));

    const auto &store = task_of(p, "store_result");
    CHECK(std::string(store.signature) == "(artifacts: Artifacts, data: json) -> json");
    REQUIRE(store.param_count == 2);
    CHECK(std::string(store.params[0].name) == "artifacts");
    CHECK(std::string(store.params[0].annotation) == "Artifacts");
    CHECK(store.params[0].flags == TH_PARAM_INJECTED);
    CHECK(store.params[0].schema_json == nullptr);
    CHECK(store.params[0].default_json == nullptr);
    CHECK(std::string(store.params[1].annotation) == "json");
    CHECK(json::parse(store.params[1].schema_json) == json::object());
    CHECK(json::parse(store.params_schema_json)["properties"].size() == 1);  // injected ones are not asked for

    CHECK(std::string(task_of(p, "touch").signature) == "(context: Context) -> void");
    CHECK(std::string(task_of(p, "double_it").signature) == "(x: int) -> int");
}

TEST_CASE("annotations and schemas of every supported type") {
    const auto &t = task_of(types(), "all_types");
    const std::map<std::string, std::pair<std::string, std::string>> expected = {
        {"b", {"bool", R"({"type":"boolean"})"}},
        {"i8", {"int8_t", R"({"type":"integer","minimum":-128,"maximum":127})"}},
        {"u8", {"uint8_t", R"({"type":"integer","minimum":0,"maximum":255})"}},
        {"i16", {"int16_t", R"({"type":"integer","minimum":-32768,"maximum":32767})"}},
        {"u16", {"uint16_t", R"({"type":"integer","minimum":0,"maximum":65535})"}},
        {"i32", {"int", R"({"type":"integer","minimum":-2147483648,"maximum":2147483647})"}},
        {"u32", {"unsigned int", R"({"type":"integer","minimum":0,"maximum":4294967295})"}},
        {"i64", {"int64_t", R"({"type":"integer"})"}},
        {"u64", {"uint64_t", R"({"type":"integer","minimum":0})"}},
        {"f", {"float", R"({"type":"number"})"}},
        {"d", {"double", R"({"type":"number"})"}},
        {"s", {"std::string", R"({"type":"string"})"}},
        {"j", {"json", R"({})"}},
        {"v",
         {"std::vector<int>",
          R"({"type":"array","items":{"type":"integer","minimum":-2147483648,"maximum":2147483647}})"}},
        {"grid",
         {"std::vector<std::vector<std::string>>",
          R"({"type":"array","items":{"type":"array","items":{"type":"string"}}})"}},
        {"oi",
         {"std::optional<int>",
          R"({"anyOf":[{"type":"integer","minimum":-2147483648,"maximum":2147483647},{"type":"null"}],"default":null})"}},
        {"nested",
         {"std::optional<std::vector<std::optional<int>>>",
          R"({"anyOf":[{"type":"array","items":{"anyOf":[{"type":"integer","minimum":-2147483648,"maximum":2147483647},{"type":"null"}]}},{"type":"null"}],"default":null})"}},
        {"m", {"std::map<std::string, double>", R"({"type":"object","additionalProperties":{"type":"number"}})"}},
    };
    REQUIRE(t.param_count == expected.size());
    for (const auto &entry : expected) {
        const auto &name = entry.first;
        const auto &want = entry.second;
        CAPTURE(name);
        const auto &p = param_of(t, name);
        CHECK(std::string(p.annotation) == want.first);
        CHECK(json::parse(p.schema_json) == json::parse(want.second));
    }
    // std::optional without a default: optional, default null.
    CHECK(param_of(t, "oi").flags == 0);
    CHECK(str_or(param_of(t, "oi").default_json) == "null");
    CHECK(param_of(t, "i8").flags == TH_PARAM_REQUIRED);
    const json schema = json::parse(t.params_schema_json);
    CHECK(schema["required"].size() == 16);
    CHECK(std::find(schema["required"].begin(), schema["required"].end(), "oi") == schema["required"].end());

    const auto &mixed = task_of(types(), "mixed");
    CHECK(std::string(mixed.signature) == "(database: Database, a: int, context: Context, b: std::string) -> json");
    CHECK(std::string(task_of(types(), "with_default").signature) ==
          R"((n: int = 5, label: std::string = "x") -> json)");
    CHECK(std::string(task_of(types(), "opt").signature) == "(o: std::optional<int> = null) -> json");
    CHECK(json::parse(param_of(task_of(types(), "opt_default"), "o").schema_json)["default"] == 7);
}

// ---- Binding params ------------------------------------------------------------------------

TEST_CASE("every supported type converts from JSON") {
    const json in = json::parse(R"({
        "b": true, "i8": -128, "u8": 255, "i16": -32768, "u16": 65535, "i32": 2147483647,
        "u32": 4294967295, "i64": -9223372036854775808, "u64": 18446744073709551615,
        "f": 1.5, "d": 2, "s": "text", "j": {"any": [1, null]}, "v": [1, 2, 3],
        "grid": [["a"], [], ["b", "c"]], "oi": 4, "nested": [1, null, 3], "m": {"x": 1.25, "y": 2}})");
    const json out = run_ok(task_of(types(), "all_types"), in.dump());
    CHECK(out == in);  // every value arrives intact (d: 2 -> 2.0 compares equal)
    CHECK(out["d"].is_number_float());

    json absent = in;
    absent.erase("oi");
    absent["nested"] = nullptr;
    const json out2 = run_ok(task_of(types(), "all_types"), absent.dump());
    CHECK(out2["oi"].is_null());
    CHECK(out2["nested"].is_null());
}

TEST_CASE("integers: float-encoded integers, range checks at the limits") {
    const auto &u8 = task_of(types(), "u8");
    CHECK(run_ok(u8, R"({"n": 0})") == 0);
    CHECK(run_ok(u8, R"({"n": 255})") == 255);
    CHECK(run_ok(u8, R"({"n": 3.0})") == 3);  // an integer for JSON Schema
    expect_invalid(u8, R"({"n": 300})", "parameter 'n': 300 is out of range for uint8_t");
    expect_invalid(u8, R"({"n": -1})", "parameter 'n': -1 is out of range for uint8_t");
    expect_invalid(u8, R"({"n": 256.0})", "parameter 'n': 256.0 is out of range for uint8_t");

    const auto &i = task_of(types(), "int");
    expect_invalid(i, R"({"a": 3.5})", "parameter 'a': 3.5 is not an integer");
    expect_invalid(i, R"({"a": "3"})", "parameter 'a': expected integer, got string");
    expect_invalid(i, R"({"a": null})", "parameter 'a': expected integer, got null");
    expect_invalid(i, R"({"a": true})", "parameter 'a': expected integer, got boolean");
    expect_invalid(i, R"({"a": 2147483648})", "parameter 'a': 2147483648 is out of range for int");
    expect_invalid(i, R"({"a": -2147483649})", "parameter 'a': -2147483649 is out of range for int");
    expect_invalid(i, R"({"a": 1e20})", "parameter 'a': 1e+20 is out of range for int");
    CHECK(run_ok(i, R"({"a": -2147483648})") == -2147483648LL);

    const auto &i64 = task_of(types(), "i64");
    CHECK(run_ok(i64, R"({"v": 9223372036854775807})") == std::numeric_limits<std::int64_t>::max());
    expect_invalid(i64, R"({"v": 9223372036854775808})",
                   "parameter 'v': 9223372036854775808 is out of range for int64_t");
    expect_invalid(i64, R"({"v": 9.3e18})", "parameter 'v': 9.3e+18 is out of range for int64_t");
}

TEST_CASE("other scalar types are strict") {
    expect_invalid(task_of(types(), "flag"), R"({"b": 1})", "parameter 'b': expected boolean, got integer");
    CHECK(run_ok(task_of(types(), "flag"), R"({"b": false})") == false);
    expect_invalid(task_of(types(), "str"), R"({"s": 5})", "parameter 's': expected string, got integer");
    expect_invalid(task_of(types(), "str"), R"({"s": ["x"]})", "parameter 's': expected string, got array");
    CHECK(run_ok(task_of(types(), "str"), R"({"s": "ünï"})") == "ünï");
    expect_invalid(task_of(types(), "flt"), R"({"f": "1"})", "parameter 'f': expected number, got string");
    expect_invalid(task_of(types(), "flt"), R"({"f": 1e39})", "parameter 'f': 1e+39 is out of range for float");
    CHECK(run_ok(task_of(types(), "flt"), R"({"f": 7})") == 7.0);
}

TEST_CASE("containers name the failing element") {
    const auto &vec = task_of(types(), "vec");
    CHECK(run_ok(vec, R"({"xs": []})") == json::array());
    expect_invalid(vec, R"({"xs": [1, 2, "three"]})", "parameter 'xs'[2]: expected integer, got string");
    expect_invalid(vec, R"({"xs": {"a": 1}})", "parameter 'xs': expected array, got object");
    expect_invalid(task_of(types(), "grid"), R"({"grid": [["a"], [1]]})",
                   "parameter 'grid'[1][0]: expected string, got integer");
    expect_invalid(task_of(types(), "dict"), R"({"m": {"ok": 1, "k": "v"}})",
                   R"(parameter 'm'["k"]: expected number, got string)");
    expect_invalid(task_of(types(), "all_types"),
                   R"({"b":true,"i8":0,"u8":0,"i16":0,"u16":0,"i32":0,"u32":0,"i64":0,"u64":0,"f":0,"d":0,
                       "s":"","j":null,"v":[],"grid":[],"nested":[1,"x"],"m":{}})",
                   "parameter 'nested'[1]: expected integer, got string");
}

TEST_CASE("optional parameters and defaults") {
    const auto &opt = task_of(types(), "opt");
    CHECK(run_ok(opt, "{}") == "none");
    CHECK(run_ok(opt, R"({"o": null})") == "none");
    CHECK(run_ok(opt, R"({"o": 3})") == 3);
    expect_invalid(opt, R"({"o": "3"})", "parameter 'o': expected integer, got string");
    CHECK(run_ok(task_of(types(), "opt_default"), "{}") == 7);
    CHECK(run_ok(task_of(types(), "opt_default"), R"({"o": null})") == "none");  // explicit null is a value

    const auto &wd = task_of(types(), "with_default");
    CHECK(run_ok(wd, "{}") == json({{"n", 5}, {"label", "x"}}));
    CHECK(run_ok(wd, R"({"label": "y"})") == json({{"n", 5}, {"label", "y"}}));
    CHECK(run_ok(wd, R"({"n": 9, "label": "z"})") == json({{"n", 9}, {"label", "z"}}));
    // A default does not make null acceptable for a non-optional type.
    expect_invalid(wd, R"({"n": null})", "parameter 'n': expected integer, got null");
}

TEST_CASE("params object shape: missing, unknown, not an object, not JSON") {
    const auto &add_task = task_of(basics(), "add");
    CHECK(run_ok(add_task, R"({"a": 2, "b": 3})") == json({{"result", 5}}));
    expect_invalid(add_task, R"({"a": 2})", "missing required parameter 'b'");
    expect_invalid(add_task, "{}", "missing required parameter 'a'");
    expect_invalid(add_task, R"({"a": 1, "b": 2, "x": 3})", "unknown parameter 'x'");
    expect_invalid(add_task, R"({"nmae": 1})", "unknown parameter 'nmae'");  // reported before the missing ones
    expect_invalid(add_task, "[1, 2]", "params must be a JSON object");
    expect_invalid(add_task, "null", "params must be a JSON object");
    expect_invalid(task_of(types(), "mixed"), R"({"a": 1, "b": 2})", "parameter 'b': expected string, got integer");
    // Injected parameters are never taken from the caller.
    expect_invalid(task_of(types(), "mixed"), R"({"a": 1, "b": "x", "database": 1})", "unknown parameter 'database'");

    const auto [status, message] = validate(add_task, "{not json");
    CHECK(status == TH_INVALID);
    CHECK(message.rfind("params are not valid JSON: ", 0) == 0);
    Fake fake;
    CHECK(invoke(add_task, fake, "{not json") == TH_ERROR);
    REQUIRE(fake.error.has_value());
    CHECK(fake.error->type == "taskhost::InvalidParams");
    CHECK(fake.error->message == message);

    // Nothing sent at all counts as {}.
    CHECK(task_of(basics(), "greet_user").validate(nullptr, 0, nullptr) == TH_OK);
    Fake empty;
    CHECK(task_of(basics(), "greet_user").invoke(&empty.api, empty.call(), "", 0) == TH_OK);
    CHECK(empty.result_json() == json({{"message", "Hello, World!"}}));
}

// ---- Results ----------------------------------------------------------------------------

TEST_CASE("results: json, void as null, convertible values") {
    CHECK(run_ok(task_of(basics(), "greet_user"), R"({"name": "Alice"})") == json({{"message", "Hello, Alice!"}}));
    Fake fake;
    CHECK(invoke(task_of(basics(), "touch"), fake, "{}") == TH_OK);
    CHECK(fake.result == "null");
    CHECK(fake.result_calls == 1);
    CHECK(fake.error_calls == 0);
    REQUIRE(fake.logs.size() == 1);
    CHECK(fake.logs[0] == std::pair<int, std::string>{TH_LOG_INFO, "touched"});
    CHECK(run_ok(task_of(basics(), "double_it"), R"({"x": 21})") == 42);
}

// ---- Services ---------------------------------------------------------------------------------

TEST_CASE("Context: job id, cancellation, progress, log") {
    Fake fake;
    REQUIRE(invoke(task_of(services(), "context"), fake, "{}") == TH_OK);
    CHECK(fake.result_json() == json({{"job_id", fake.job}, {"cancelled", false}}));
    CHECK(fake.progress == std::vector<std::pair<double, std::string>>{{0.25, "a quarter"}, {-1.0, "<null>"}});
    CHECK(fake.logs == std::vector<std::pair<int, std::string>>{
                           {TH_LOG_DEBUG, "dbg"}, {TH_LOG_INFO, "inf"}, {TH_LOG_WARN, "wrn"}, {TH_LOG_ERROR, "err"}});
}

TEST_CASE("Context: throw_if_cancelled ends the task as taskhost::Cancelled") {
    Fake fake;
    fake.cancel_after = 3;
    CHECK(invoke(task_of(errors(), "cancellable"), fake, "{}") == TH_ERROR);
    CHECK(fake.cancel_checks == 4);
    REQUIRE(fake.error.has_value());
    CHECK(fake.error->type == "taskhost::Cancelled");
    CHECK(fake.error->message == "job was cancelled");
    CHECK(fake.result_calls == 0);

    Fake never;
    CHECK(invoke(task_of(errors(), "cancellable"), never, "{}") == TH_OK);
    CHECK(never.cancel_checks == 1000);
}

TEST_CASE("Artifacts: save with and without parent, get") {
    Fake fake;
    REQUIRE(invoke(task_of(services(), "artifacts"), fake, "{}") == TH_OK);
    const json out = fake.result_json();
    REQUIRE(fake.artifacts.size() == 2);
    const std::string parent = out["parent"], child = out["child"];
    CHECK(parent.size() == 26);
    CHECK(fake.artifacts.at(parent).first == R"({"k":"v"})");
    CHECK_FALSE(fake.artifacts.at(parent).second.has_value());
    CHECK(fake.artifacts.at(child).first == "[1,2]");
    CHECK(fake.artifacts.at(child).second == parent);
    CHECK(out["record"]["id"] == child);
    CHECK(out["record"]["data"] == json::array({1, 2}));
    CHECK(out["record"]["parent_id"] == parent);

    Fake store;
    REQUIRE(invoke(task_of(basics(), "store_result"), store, R"({"data": {"key": "value"}})") == TH_OK);
    REQUIRE(store.artifacts.size() == 1);
    CHECK(store.result_json() == json({{"artifact_id", store.artifacts.begin()->first}}));
    CHECK(json::parse(store.artifacts.begin()->second.first) == json({{"key", "value"}}));
}

TEST_CASE("host failures become HostError with the host's message") {
    Fake missing;
    CHECK(invoke(task_of(services(), "artifact_missing"), missing, "{}") == TH_ERROR);
    REQUIRE(missing.error.has_value());
    CHECK(missing.error->type == "taskhost::HostError");
    CHECK(missing.error->message ==
          "artifact_get failed (TH_NOT_FOUND): artifact 01NOSUCHARTIFACTXXXXXXXXXX not found");

    Fake full;
    full.fail_artifact_save = true;
    CHECK(invoke(task_of(basics(), "store_result"), full, R"({"data": 1})") == TH_ERROR);
    REQUIRE(full.error.has_value());
    CHECK(full.error->message == "artifact_save failed (TH_ERROR): disk full");

    Fake db;
    db.fail_query = true;
    CHECK(invoke(task_of(services(), "database_fails"), db, "{}") == TH_ERROR);
    REQUIRE(db.error.has_value());
    CHECK(db.error->type == "taskhost::HostError");
    CHECK(db.error->message == "db_query failed (TH_ERROR): no such table: nowhere");
}

TEST_CASE("Database: rows, positional params, exec, url") {
    Fake fake;
    fake.rows = json::parse(R"([{"a": 1, "b": "x"}])");
    fake.url = "sqlite:///tmp/x.db";
    REQUIRE(invoke(task_of(services(), "database"), fake, "{}") == TH_OK);
    CHECK(fake.result_json() == json({{"rows", fake.rows}, {"url", "sqlite:///tmp/x.db"}}));
    REQUIRE(fake.queries.size() == 2);
    CHECK(fake.queries[0].first == "SELECT * FROM t WHERE a = ? AND b = ?");
    CHECK(fake.queries[0].second == R"([1,"x"])");
    CHECK(fake.queries[1].first == "DELETE FROM t");
    CHECK_FALSE(fake.queries[1].second.has_value());  // no binds: NULL, as the ABI allows
}

TEST_CASE("Session: begun before the task, committed on return, rolled back on throw") {
    Fake ok;
    REQUIRE(invoke(task_of(services(), "session_ok"), ok, "{}") == TH_OK);
    CHECK(ok.session_events == std::vector<std::string>{"begin", "commit"});
    CHECK(ok.committed == 1);
    CHECK(ok.result == R"("ok")");

    Fake bad;
    CHECK(invoke(task_of(services(), "session_throws"), bad, "{}") == TH_ERROR);
    CHECK(bad.session_events == std::vector<std::string>{"begin", "rollback"});
    CHECK(bad.committed == 0);
    REQUIRE(bad.error.has_value());
    CHECK(bad.error->type == "std::runtime_error");
    CHECK(bad.error->message == "after insert");

    // Bad params: refused before any transaction is opened.
    Fake invalid;
    CHECK(invoke(task_of(services(), "session_param"), invalid, R"({"n": "x"})") == TH_ERROR);
    CHECK(invalid.session_events.empty());
    CHECK(invalid.error->type == "taskhost::InvalidParams");

    Fake locked;
    locked.fail_begin = true;
    CHECK(invoke(task_of(services(), "session_ok"), locked, "{}") == TH_ERROR);
    CHECK(locked.session_events == std::vector<std::string>{"begin"});
    CHECK(locked.queries.empty());  // the task never ran
    CHECK(locked.error->message == "session_begin failed (TH_ERROR): database is locked");

    Fake commit_fails;
    commit_fails.fail_commit = true;
    CHECK(invoke(task_of(services(), "session_ok"), commit_fails, "{}") == TH_ERROR);
    CHECK(commit_fails.result_calls == 0);  // no result for work that was not kept
    CHECK(commit_fails.error->message == "session_end(commit) failed (TH_ERROR): disk I/O error");
}

TEST_CASE("Scheduler: submit and job") {
    Fake fake;
    REQUIRE(invoke(task_of(services(), "scheduler"), fake, "{}") == TH_OK);
    const json out = fake.result_json();
    REQUIRE(fake.scheduled.size() == 2);
    CHECK(fake.scheduled[0] == std::pair<std::string, std::string>{"greet_user", R"({"name":"Child"})"});
    CHECK(fake.scheduled[1] == std::pair<std::string, std::string>{"hello", "{}"});
    CHECK(out["id"] == fake.make_id_for("J", 1));
    CHECK(out["job"] == json({{"id", out["id"]}, {"status", "pending"}}));
}

TEST_CASE("a service the host lacks is a clear ServiceUnavailable error") {
    Fake old_host;  // an older, shorter table: no artifact functions at all
    old_host.api.struct_size = offsetof(th_host_api, artifact_save);
    old_host.api.abi_minor = 0;
    CHECK(invoke(task_of(basics(), "store_result"), old_host, R"({"data": 1})") == TH_ERROR);
    REQUIRE(old_host.error.has_value());
    CHECK(old_host.error->type == "taskhost::ServiceUnavailable");
    CHECK(old_host.error->message == "the host does not provide the 'artifact_save' service (host ABI " +
                                         std::to_string(TH_ABI_MAJOR) + ".0)");

    Fake null_member;
    null_member.api.database_url = nullptr;
    CHECK(invoke(task_of(services(), "database"), null_member, "{}") == TH_ERROR);
    CHECK(null_member.error->message.find("'database_url'") != std::string::npos);

    Fake no_session;
    no_session.api.session_end = nullptr;
    CHECK(invoke(task_of(services(), "session_ok"), no_session, "{}") == TH_ERROR);
    CHECK(no_session.session_events.empty());  // not begun: it could not be closed
    CHECK(no_session.error->type == "taskhost::ServiceUnavailable");

    // Without set_result/set_error nothing can be reported; no crash.
    Fake mute;
    mute.api.set_error = nullptr;
    CHECK(invoke(task_of(errors(), "runtime_error"), mute, "{}") == TH_ERROR);
    CHECK(task_of(errors(), "runtime_error").invoke(nullptr, nullptr, "{}", 2) == TH_ERROR);
}

TEST_CASE("every service can be injected into one task") {
    Fake fake;
    REQUIRE(invoke(task_of(services(), "all"), fake, "{}") == TH_OK);
    CHECK(fake.result_json() == fake.job);
    CHECK(fake.session_events == std::vector<std::string>{"begin", "commit"});
    const auto &t = task_of(services(), "all");
    REQUIRE(t.param_count == 5);
    const char *annotations[] = {"Database", "Session", "Artifacts", "Scheduler", "Context"};
    const char *names[] = {"database", "session", "artifacts", "scheduler", "context"};
    for (int i = 0; i < 5; ++i) {
        CHECK(std::string(t.params[i].annotation) == annotations[i]);
        CHECK(std::string(t.params[i].name) == names[i]);
        CHECK(t.params[i].flags == TH_PARAM_INJECTED);
    }
    CHECK(json::parse(t.params_schema_json)["properties"].empty());
}

// ---- Exceptions ------------------------------------------------------------------------------------

TEST_CASE("exceptions: demangled type, message, traceback") {
    Fake fake;
    CHECK(invoke(task_of(errors(), "invalid_argument"), fake, "{}") == TH_ERROR);
    CHECK(fake.result_calls == 0);
    CHECK(fake.error_calls == 1);
    REQUIRE(fake.error.has_value());
    CHECK(fake.error->type == "std::invalid_argument");
    CHECK(fake.error->message == "Something went wrong");
    const std::string &tb = fake.error->traceback;
    // Tasks built into this test binary have no throw hook (TASKHOST_PLUGIN
    // defines it): the stack is the catch site's, and the text says so.
    CHECK(tb.rfind("Traceback (innermost first, captured where the plugin caught it", 0) == 0);
    CHECK(tb.find("\n  #0 ") != std::string::npos);
    CHECK(tb.find("\n  #1 ") != std::string::npos);
    CHECK(tb.ends_with("std::invalid_argument: Something went wrong"));

    const std::map<std::string, std::pair<std::string, std::string>> cases = {
        {"runtime_error", {"std::runtime_error", "boom"}},
        {"custom", {"sdk_test::CustomError", "custom failure"}},
        {"throws_int", {"int", "unknown exception"}},
        {"throws_string", {"std::string", "a thrown string"}},
    };
    for (const auto &entry : cases) {
        const auto &task = entry.first;
        const auto &want = entry.second;
        CAPTURE(task);
        Fake f;
        CHECK(invoke(task_of(errors(), task), f, "{}") == TH_ERROR);
        REQUIRE(f.error.has_value());
        CHECK(f.error->type == want.first);  // std::string, not its full template name
        CHECK(f.error->message == want.second);
        CHECK_FALSE(f.error->traceback.empty());
    }

    // A task may itself say its input is bad.
    Fake own;
    CHECK(invoke(task_of(errors(), "user_invalid_params"), own, "{}") == TH_ERROR);
    CHECK(own.error->type == "taskhost::InvalidParams");
    CHECK(own.error->message == "thrown by the task");
}

// ---- Declaration errors and init ----------------------------------------------------------------

json one(int a) { return a; }
json two(int a, int b) { return a + b; }

struct TooManyTag {};
struct TooFewTag {};
struct DuplicateTag {};
struct BadDefaultTag {};
struct ClashTag {};
struct EveryTag {};

TEST_CASE("every(): a scheduled task runs with params {}, so each of its parameters needs a default") {
    const th_plugin_desc *p =
        build_plugin<EveryTag>("every", "1.0.0", task("fine", greet_user).param("name", "World").every("@hourly"),
                               task("needs_a", one).param("a").every("0 * * * *"));
    REQUIRE(p->declaration_error != nullptr);
    CHECK(std::string(p->declaration_error) ==
          "task 'needs_a': every() runs it with params {}, but parameter 'a' has no default");
    CHECK(str_or(task_of(p, "fine").every_cron) == "@hourly");
    CHECK(str_or(task_of(p, "fine").every_tz) == "UTC");
}

TEST_CASE("declaration errors refuse the plugin through declaration_error (and init), never by throwing") {
    const th_plugin_desc *p =
        build_plugin<TooManyTag>("too_many", "1.0.0", task("fine", greet_user).param("name", "World"),
                                 task("count_mismatch", one).param("a").param("b"));
    REQUIRE(p != nullptr);
    CHECK(p->task_count == 2);  // still a well-formed descriptor for the host to read
    REQUIRE(p->declaration_error != nullptr);
    CHECK(std::string(p->declaration_error) ==
          "task 'count_mismatch': 2 parameter name(s) given for 1 caller parameter(s); name every "
          "non-service parameter, in order, with .param()/.params()");
    // init says the same, for 1.0 hosts that do not read declaration_error.
    REQUIRE((p->init != nullptr));
    Fake fake;
    const auto [status, message] = init(p, fake);
    CHECK(status == TH_ERROR);
    CHECK(message == p->declaration_error);
    const auto &broken = task_of(p, "count_mismatch");
    CHECK(std::string(broken.signature) == "(a: int) -> json");
    CHECK(validate(broken, R"({"a": 1})").first == TH_ERROR);
    Fake run;
    CHECK(invoke(broken, run, R"({"a": 1})") == TH_ERROR);
    CHECK(run.error->type == "taskhost::DeclarationError");
    CHECK(run.error->message == message);

    const th_plugin_desc *few = build_plugin<TooFewTag>("too_few", "1.0.0", task("two", two).param("a"));
    REQUIRE((few->init != nullptr));
    CHECK(init(few, fake).second.find("1 parameter name(s) given for 2 caller parameter(s)") != std::string::npos);
    CHECK(std::string(task_of(few, "two").signature) == "(a: int, arg1: int) -> json");

    const th_plugin_desc *dup = build_plugin<DuplicateTag>("dup", "1.0.0", task("two", two).params("a", "a"));
    CHECK(init(dup, fake) ==
          std::pair<th_status, std::string>{TH_ERROR, "task 'two': parameter name 'a' is used twice"});

    const th_plugin_desc *bad_default =
        build_plugin<BadDefaultTag>("bad_default", "1.0.0", task("one", one).param("a", "five"));
    CHECK(init(bad_default, fake) ==
          std::pair<th_status, std::string>{
              TH_ERROR, "task 'one': invalid default for parameter 'a': expected integer, got string"});

    const th_plugin_desc *clash = build_plugin<ClashTag>(
        "clash", "1.0.0", task("clash", [](Database &, int) { return json(); }).params("database"),
        task("empty", one).param(""));
    CHECK(init(clash, fake).second ==
          "task 'clash': parameter name 'database' is used twice; task 'empty': a parameter name is empty");
}

struct InitTag {};
struct InitBothTag {};
struct InitFailsTag {};

TEST_CASE("init hook: gets Database/Context, exceptions become the refusal reason") {
    const th_plugin_desc *p = build_plugin_with_init<InitTag>(
        "with_init", "1.0.0", [](Database &db) { db.exec("CREATE TABLE IF NOT EXISTS x (id INTEGER)"); },
        task("hello", [] { return json("hi"); }));
    REQUIRE((p->init != nullptr));
    Fake fake;
    fake.job = "";  // load-time call
    CHECK(init(p, fake) == std::pair<th_status, std::string>{TH_OK, ""});
    REQUIRE(fake.queries.size() == 1);
    CHECK(fake.queries[0].first == "CREATE TABLE IF NOT EXISTS x (id INTEGER)");

    const th_plugin_desc *both = build_plugin_with_init<InitBothTag>(
        "with_init_both", "1.0.0",
        [](Context &c, Database &db) { c.info("init at " + db.url() + " job '" + c.job_id() + "'"); },
        task("hello", [] { return json("hi"); }));
    Fake f2;
    f2.job = "";
    CHECK(init(both, f2).first == TH_OK);
    REQUIRE(f2.logs.size() == 1);
    CHECK(f2.logs[0].second == "init at sqlite://:memory: job ''");

    const th_plugin_desc *fails = build_plugin_with_init<InitFailsTag>(
        "init_fails", "1.0.0", [](Database &) { throw std::runtime_error("database unavailable"); },
        task("hello", [] { return json("hi"); }));
    Fake f3;
    CHECK(init(fails, f3) == std::pair<th_status, std::string>{TH_ERROR, "database unavailable"});
}

// ---- Concurrency ---------------------------------------------------------------------------------------

TEST_CASE("one task invoked and validated from several threads at once" * doctest::test_suite("concurrency")) {
    const auto &add_task = task_of(basics(), "add");
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 300; ++i) {
                Fake fake;
                const std::string params = json({{"a", t}, {"b", i}}).dump();
                if (add_task.validate(params.data(), params.size(), nullptr) != TH_OK) ++wrong;
                if (invoke(add_task, fake, params) != TH_OK || fake.result_json()["result"] != t + i) ++wrong;
            }
        });
    }
    for (auto &th : threads) th.join();
    CHECK(wrong == 0);
}

// ---- The built plugins, loaded as the host loads them --------------------------------------------------

// Build tree layout: <build>/tests/taskhost_unit_tests next to <build>/plugins
// and <build>/test-plugins; the env vars override.
std::filesystem::path plugin_dir(const char *env, const char *sibling) {
    if (const char *e = std::getenv(env)) return e;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    return exe.parent_path().parent_path() / sibling;
}

struct Loaded {
    void *handle = nullptr;
    const th_plugin_desc *desc = nullptr;
    explicit Loaded(const std::filesystem::path &file) {
        handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) return;
        if (auto entry = reinterpret_cast<th_plugin_entry_fn>(dlsym(handle, TH_PLUGIN_ENTRY_NAME))) desc = entry();
    }
    ~Loaded() {
        if (handle != nullptr) dlclose(handle);
    }
    Loaded(const Loaded &) = delete;
    Loaded &operator=(const Loaded &) = delete;
};

TEST_CASE("built example and fixture plugins behave as specified") {
    const auto examples = plugin_dir("TASKHOST_PLUGIN_DIR", "plugins");
    const auto fixtures = plugin_dir("TASKHOST_TEST_PLUGIN_DIR", "test-plugins");
    if (!std::filesystem::exists(examples / "demo.so") || !std::filesystem::exists(fixtures / "types.so")) {
        MESSAGE("built plugins not found under " << examples << " / " << fixtures << "; skipped");
        return;
    }

    SUBCASE("demo.so") {
        Loaded demo(examples / "demo.so");
        REQUIRE(demo.desc != nullptr);
        CHECK(std::string(demo.desc->name) == "demo");
        for (const char *n : {"greet_user", "hello", "greet", "process_data", "failing_task", "safe_task", "slow_task"})
            CHECK_NOTHROW(task_of(demo.desc, n));
        CHECK(tags_of(task_of(demo.desc, "greet_user")) == std::vector<std::string>{"demo", "simple"});
        CHECK(run_ok(task_of(demo.desc, "greet"), R"({"greeting": "Hi"})") == json({{"message", "Hi, World!"}}));
        CHECK(run_ok(task_of(demo.desc, "safe_task"), R"({"risky_param": "16"})") ==
              json({{"status", "success"}, {"result", 4.0}}));
        CHECK(run_ok(task_of(demo.desc, "safe_task"), R"({"risky_param": "-4"})")["status"] == "error");

        Fake f;
        f.url = "sqlite:///data/x.db";
        REQUIRE(invoke(task_of(demo.desc, "process_data"), f, "{}") == TH_OK);
        REQUIRE(f.artifacts.size() == 1);
        const auto &[inner_id, inner] = *f.artifacts.begin();
        CHECK(json::parse(inner.first) ==
              json({{"status", "processed"}, {"records", 42}, {"timestamp", "2025-10-18T12:00:00Z"}}));
        CHECK(f.result_json() ==
              json({{"status", "complete"}, {"artifact_id", inner_id}, {"database_url", "sqlite:///data/x.db"}}));

        Fake fail;
        CHECK(invoke(task_of(demo.desc, "failing_task"), fail, "{}") == TH_ERROR);
        CHECK(fail.error->type == "std::invalid_argument");
        CHECK(fail.error->message == "Something went wrong");
        // A host without set_error_frames gets module+offset text.
        CHECK(fail.error->traceback.rfind("Traceback (innermost first, captured where it was thrown), plugin demo.so "
                                          "build-id ",
                                          0) == 0);
        CHECK(fail.error->traceback.find("\n  #0 demo.so+0x") != std::string::npos);

        Fake slow;
        slow.cancel_after = 2;
        CHECK(invoke(task_of(demo.desc, "slow_task"), slow, R"({"seconds": 30})") == TH_ERROR);
        CHECK(slow.error->type == "taskhost::Cancelled");
        CHECK(slow.progress.size() == 2);
        Fake quick;
        CHECK(invoke(task_of(demo.desc, "slow_task"), quick, R"({"seconds": 0.12})") == TH_OK);
        CHECK(quick.result_json() == json({{"slept", 0.12}}));
        CHECK(quick.progress.back() == std::pair<double, std::string>{1.0, "done"});
    }

    SUBCASE("math.so and data.so") {
        Loaded math(examples / "math.so");
        REQUIRE(math.desc != nullptr);
        CHECK(run_ok(task_of(math.desc, "multiply_numbers"), R"({"a": 6, "b": 7})") ==
              json({{"result", 42}, {"a", 6}, {"b", 7}}));
        CHECK(run_ok(task_of(math.desc, "add"), R"({"a": 2147483647, "b": 1})") == json({{"result", 2147483648LL}}));
        Loaded data(examples / "data.so");
        REQUIRE(data.desc != nullptr);
        const auto csv = std::filesystem::temp_directory_path() / ("sdk_test_" + std::to_string(getpid()) + ".csv");
        {
            std::FILE *out = std::fopen(csv.c_str(), "w");
            REQUIRE(out != nullptr);
            std::fputs(
                "name,age,score,note\r\n\"Smith, J\",30,1.5,\"said "
                "\"\"hi\"\"\"\nLee,40,,x\n\nKim,50,4.5,\"multi\nline\"\n",
                out);
            std::fclose(out);
        }
        const json r = run_ok(task_of(data.desc, "process_csv"), json({{"filepath", csv.string()}}).dump());
        std::filesystem::remove(csv);
        CHECK(r["rows"] == 3);
        CHECK(r["columns"] == json::array({"name", "age", "score", "note"}));
        CHECK(r["summary"].size() == 2);
        CHECK(r["summary"]["age"]["count"] == 3);
        CHECK(r["summary"]["age"]["mean"] == 40.0);
        CHECK(r["summary"]["age"]["std"] == 10.0);
        CHECK(r["summary"]["age"]["min"] == 30.0);
        CHECK(r["summary"]["age"]["max"] == 50.0);
        CHECK(r["summary"]["score"]["count"] == 2);
        CHECK(r["summary"]["score"]["mean"] == 3.0);
        Fake missing;
        CHECK(invoke(task_of(data.desc, "process_csv"), missing, R"({"filepath": "/nonexistent/x.csv"})") == TH_ERROR);
        CHECK(missing.error->type == "std::runtime_error");
        CHECK(missing.error->message == "CSV file not found: '/nonexistent/x.csv'");
    }

    SUBCASE("storage.so") {
        Loaded storage(examples / "storage.so");
        REQUIRE(storage.desc != nullptr);
        Fake load;
        load.job = "";
        CHECK(init(storage.desc, load).first == TH_OK);
        REQUIRE(load.queries.size() == 2);
        CHECK(load.queries[0].first.find("CREATE TABLE IF NOT EXISTS example_users") == 0);
        CHECK(run_ok(task_of(storage.desc, "count_users"), "{}") == json({{"user_count", 3}}));
        Fake f;
        REQUIRE(invoke(task_of(storage.desc, "long_task"), f, R"({"steps": 3})") == TH_OK);
        CHECK(f.result_json() ==
              json({{"status", "complete"}, {"steps_completed", 3}, {"results", json::array({0, 1, 4})}}));
        CHECK(f.artifacts.size() == 3);
        CHECK(f.progress.size() == 3);
        CHECK(f.progress.back().first == 1.0);
    }

    SUBCASE("types.so and the session fixtures") {
        Loaded t(fixtures / "types.so");
        REQUIRE(t.desc != nullptr);
        Fake f;  // one fake database across the calls
        CHECK(init(t.desc, f).first == TH_OK);
        CHECK(invoke(task_of(t.desc, "session_rollback"), f, "{}") == TH_ERROR);
        f.result.reset();
        CHECK(invoke(task_of(t.desc, "session_count"), f, "{}") == TH_OK);
        CHECK(f.result_json() == json({{"count", 0}}));
        CHECK(invoke(task_of(t.desc, "session_commit"), f, "{}") == TH_OK);
        CHECK(invoke(task_of(t.desc, "session_count"), f, "{}") == TH_OK);
        CHECK(f.result_json() == json({{"count", 1}}));
        CHECK(run_ok(task_of(t.desc, "echo_types"), R"({"b":true,"i":-5,"d":0.5,"s":"s","j":[1],"v":[1,2]})") ==
              json::parse(R"({"b":true,"i":-5,"d":0.5,"s":"s","j":[1],"v":[1,2],"o":null})"));
        Fake sched;
        REQUIRE(invoke(task_of(t.desc, "schedule_child"), sched, R"({"name": "Kid"})") == TH_OK);
        CHECK(sched.scheduled.at(0) == std::pair<std::string, std::string>{"greet_user", R"({"name":"Kid"})"});
    }

    SUBCASE("refused fixtures say why") {
        Fake f;
        Loaded mismatch(fixtures / "count_mismatch.so");
        REQUIRE(mismatch.desc != nullptr);
        REQUIRE(mismatch.desc->declaration_error != nullptr);
        CHECK(std::string(mismatch.desc->declaration_error).find("2 parameter name(s) given for 1") !=
              std::string::npos);
        CHECK(init(mismatch.desc, f).second == mismatch.desc->declaration_error);
        Loaded init_fails(fixtures / "init_fails.so");
        REQUIRE(init_fails.desc != nullptr);
        CHECK(init(init_fails.desc, f) == std::pair<th_status, std::string>{TH_ERROR, "database unavailable"});
        Loaded wrong(fixtures / "wrong_abi.so");
        REQUIRE(wrong.desc != nullptr);
        CHECK(wrong.desc->abi_major == 99);
        Loaded no_entry(fixtures / "no_entry.so");
        CHECK(no_entry.handle != nullptr);
        CHECK(no_entry.desc == nullptr);
        Loaded text(fixtures / "not_a_plugin.so");
        CHECK(text.handle == nullptr);
        Loaded v1(fixtures / "versioned_v1.so"), v2(fixtures / "versioned_v2.so");
        REQUIRE(v1.desc != nullptr);
        REQUIRE(v2.desc != nullptr);
        CHECK(std::string(v1.desc->version) == "1.0.0");
        CHECK(std::string(v2.desc->version) == "2.0.0");
        CHECK(run_ok(task_of(v1.desc, "which_version"), "{}") == json({{"version", 1}}));
        CHECK(run_ok(task_of(v2.desc, "which_version"), "{}") == json({{"version", 2}}));
    }
}

}  // namespace sdk_test
