// What only the PostgreSQL store has: migrations shared by a fleet, jsonb,
// task SQL in PostgreSQL's dialect, and a server that goes away. The
// generic store tests run against it too (test_store.cpp, ctest entry
// unit-store-postgres); these need TASKHOST_TEST_PG_URL.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobs/fleet_tasks.hpp"
#include "schema/json_schema.hpp"
#include "store/postgres/connection.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/postgres/schema.hpp"
#include "store_under_test.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

using namespace taskhost;
using namespace taskhost::model;
using taskhost::store::PostgresStore;
using taskhost::store::StoreError;
using taskhost::store::postgres::Rows;
using nlohmann::json;

namespace {

// A schema of its own for one test, dropped afterwards.
struct Schema {
    std::string name = testing::create_postgres_schema();
    std::string url = testing::postgres_url_for(name);
    ~Schema() { testing::drop_postgres_schema(name); }
};

PostgresStore::Options options_for(const std::string &url) {
    PostgresStore::Options o;
    o.url = url;
    return o;
}

Job make_job() {
    Job j;
    j.id = new_ulid_string();
    j.task_name = "add";
    j.params_json = R"({"a":1,"b":2})";
    j.submitted_at = now_us();
    return j;
}

}  // namespace

TEST_CASE("store (postgres): the schema is migrated once, by one of several hosts starting together") {
    Schema schema;
    // Four "hosts" migrate at once: the advisory lock lets one do it.
    std::vector<std::future<int>> found;
    for (int i = 0; i < 4; ++i)
        found.push_back(std::async(std::launch::async, [&] { return PostgresStore::migrate(schema.url); }));
    int from_zero = 0;
    for (auto &f : found) {
        const int v = f.get();
        CHECK((v == 0 || v == store::postgres::kSchemaVersion));
        from_zero += v == 0;
    }
    CHECK(from_zero == 1);
    store::postgres::Connection conn(schema.url, false);
    CHECK(store::postgres::schema_version(conn) == store::postgres::kSchemaVersion);
    CHECK(conn.run("SELECT count(*) FROM taskhost_schema").i64(0, 0) == 1);
    // Again: nothing to do.
    CHECK(PostgresStore::migrate(schema.url) == store::postgres::kSchemaVersion);
}

TEST_CASE("store (postgres): a statement of the job path is prepared once per session") {
    Schema schema;
    static constexpr store::postgres::Statement kAddOne{"SELECT $1::int + 1"};
    store::postgres::Connection conn(schema.url, false);
    auto prepared = [&] { return conn.run("SELECT count(*) FROM pg_prepared_statements").i64(0, 0); };
    for (int64_t i = 0; i < 3; ++i) {
        store::postgres::Params p;
        p.add(i);
        CHECK(conn.run(kAddOne, p).i64(0, 0) == i + 1);
    }
    CHECK(prepared() == 1);
    // A failed statement leaves it usable, in a transaction too; a new
    // session prepares it again.
    store::postgres::Params bad;
    bad.add(std::string_view("one"));
    CHECK_THROWS_AS(conn.run(kAddOne, bad), StoreError);
    store::postgres::Params two;
    two.add(int64_t{2});
    CHECK(conn.run(kAddOne, two).i64(0, 0) == 3);
    static constexpr store::postgres::Statement kAddTwo{"SELECT $1::int + 2"};
    conn.exec("BEGIN");
    CHECK_THROWS_AS(conn.run(kAddOne, bad), StoreError);
    CHECK_THROWS_AS(conn.run(kAddTwo, two), StoreError);  // the transaction is aborted: not prepared
    conn.exec("ROLLBACK");
    CHECK(conn.run(kAddTwo, two).i64(0, 0) == 4);
    CHECK(prepared() == 2);
    REQUIRE(conn.reset());
    CHECK(prepared() == 0);
    store::postgres::Params p;
    p.add(int64_t{41});
    CHECK(conn.run(kAddOne, p).i64(0, 0) == 42);
    CHECK(prepared() == 1);
}

TEST_CASE("store (postgres): --sync full raises synchronous_commit from off, and only from off") {
    Schema schema;
    // The URL's options end with search_path: a server default of its own follows.
    const auto with_default = [&](const char *value) { return schema.url + "%20-csynchronous_commit%3D" + value; };
    const auto shown = [](store::postgres::Connection &c) { return c.run("SHOW synchronous_commit").text(0, 0); };
    store::postgres::Connection durable(with_default("off"), true), as_server(with_default("off"), false);
    CHECK(shown(durable) == "on");
    CHECK(shown(as_server) == "off");
    store::postgres::Connection stronger(with_default("remote_apply"), true);
    CHECK(shown(stronger) == "remote_apply");
    // A new session (the server restarted, the connection dropped) is raised again.
    store::postgres::Params pid;
    pid.add(durable.run("SELECT pg_backend_pid()").i64(0, 0));
    as_server.run("SELECT pg_terminate_backend($1::int)", pid);
    CHECK_THROWS_AS(shown(durable), StoreError);
    REQUIRE(durable.reset());
    CHECK(shown(durable) == "on");
    // Every connection of the store, task code's too.
    PostgresStore::migrate(schema.url);
    for (const bool full : {true, false}) {
        auto o = options_for(with_default("off"));
        o.sync_full = full;
        PostgresStore store(o);
        CHECK(store.task_connection()->query("SHOW synchronous_commit", "") ==
              (full ? R"([{"synchronous_commit":"on"}])" : R"([{"synchronous_commit":"off"}])"));
    }
}

TEST_CASE("store (postgres): without migrations an old schema is refused, naming the command") {
    Schema schema;
    auto o = options_for(schema.url);
    o.migrate = false;
    try {
        PostgresStore store(o);
        FAIL("an empty database must be refused without migrations");
    } catch (const StoreError &e) {
        CHECK(e.kind == StoreError::Kind::unavailable);
        CHECK(std::string(e.what()).find("taskhost migrate") != std::string::npos);
    }
    PostgresStore::migrate(schema.url);
    PostgresStore store(o);  // current now
    CHECK(store.check().ok());
}

TEST_CASE("store (postgres): a schema newer than this build is refused") {
    Schema schema;
    PostgresStore::migrate(schema.url);
    {
        store::postgres::Connection conn(schema.url, false);
        conn.exec("UPDATE taskhost_schema SET version = version + 1");
    }
    try {
        PostgresStore store(options_for(schema.url));
        FAIL("a newer schema must be refused");
    } catch (const StoreError &e) {
        CHECK(std::string(e.what()).find("newer than this build") != std::string::npos);
    }
}

TEST_CASE("store (postgres): artifacts are jsonb; \\u0000 is refused alone, the batch goes on") {
    Schema schema;
    PostgresStore store(options_for(schema.url));
    ArtifactInput in;
    in.data_json = R"({"b":[1,2.5,"x"],"a":{"n":null}})";
    Artifact a = store.save_artifact(in);
    auto got = store.get_artifact(a.id);
    REQUIRE(got);
    CHECK(json::parse(got->data_json) == json::parse(*in.data_json));
    store::postgres::Connection conn(schema.url, false);
    CHECK(conn.run("SELECT data->'b'->>1 FROM artifacts").text(0, 0) == "2.5");

    ArtifactInput nul;
    nul.data_json = R"({"s":"a\u0000b"})";
    CHECK_THROWS_AS(store.save_artifact(nul), StoreError);
    ArtifactInput escaped;  // a backslash, then the text u0000: storable
    escaped.data_json = R"({"s":"a\\u0000b"})";
    auto kept = store.save_artifact(escaped);
    CHECK(json::parse(store.get_artifact(kept.id)->data_json)["s"] == "a\\u0000b");

    // A job's result with \u0000 ends the job failed, saying why.
    Job j = make_job();
    store.insert_job(j);
    store::Store::JobEnd end;
    end.finished_at = now_us();
    Artifact result;
    result.data_json = R"({"result":"\u0000"})";
    end.result_artifact = result;
    std::promise<void> durable;
    store.finish_job(j.id, std::move(end), [&] { durable.set_value(); });
    REQUIRE(durable.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto ended = store.get_job(j.id);
    REQUIRE(ended);
    CHECK(ended->status == JobStatus::failed);
    CHECK(ended->error->find("U+0000") != std::string::npos);
}

TEST_CASE("store (postgres): the URL shown has no password") {
    Schema schema;
    PostgresStore store(options_for(schema.url));
    CHECK(store.url() == schema.url);  // the test cluster's has none
    // The test cluster trusts loopback: a password is taken and ignored.
    {
        PostgresStore with_param(options_for(schema.url + "&password=s3cret&sslmode=disable"));
        CHECK(with_param.url().find("s3cret") == std::string::npos);
        CHECK(with_param.url().find("password=***&sslmode=disable") != std::string::npos);
        std::string userinfo = schema.url;
        userinfo.replace(userinfo.find('@'), 1, ":s3cret@");
        PostgresStore with_userinfo(options_for(userinfo));
        CHECK(with_userinfo.url().find("s3cret") == std::string::npos);
        CHECK(with_userinfo.url().find(":***@") != std::string::npos);
    }
    CHECK(store::is_postgres_url("postgresql://u@h/db"));
    CHECK(store::is_postgres_url("postgres://u@h/db"));
    CHECK_FALSE(store::is_postgres_url("taskhost.db"));
    CHECK_FALSE(store::is_postgres_url("sqlite:///x.db"));
}

TEST_CASE("store (postgres): TaskConnection speaks PostgreSQL, typed cells, one statement, transactions") {
    Schema schema;
    PostgresStore store(options_for(schema.url));
    auto conn = store.task_connection();
    conn->query("CREATE TABLE t (id serial PRIMARY KEY, b boolean, r double precision, s text, j jsonb, "
                "n numeric, x bytea)", "");
    conn->query("INSERT INTO t (b, r, s, j, n) VALUES ($1, $2, $3, $4, $5)",
                R"([true, 1.5, "héllo", {"k":[1,2]}, 12.25])");
    conn->query("INSERT INTO t (b, r, s, j, x) VALUES ($1, $2, $3, $4, '\\x00ff10')", R"([false, -2, "b", [3]])");
    auto rows = json::parse(conn->query("SELECT * FROM t ORDER BY id", "[]"));
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["id"] == 1);
    CHECK(rows[0]["b"] == true);
    CHECK(rows[0]["r"] == 1.5);
    CHECK(rows[0]["s"] == "héllo");
    CHECK(rows[0]["j"] == json{{"k", {1, 2}}});
    CHECK(rows[0]["n"] == 12.25);
    CHECK(rows[0]["x"].is_null());
    CHECK(rows[1]["b"] == false);
    CHECK(rows[1]["j"] == json::array({3}));
    CHECK(rows[1]["x"] == "\\x00ff10");

    auto expect_invalid = [&](const std::string &sql, const std::string &params, const std::string &needle) {
        try {
            conn->query(sql, params);
            FAIL("expected an error for: " << sql);
        } catch (const StoreError &e) {
            CHECK(e.kind == StoreError::Kind::invalid);
            CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
        }
    };
    expect_invalid("SELEC 1", "", "syntax error");
    expect_invalid("SELECT * FROM missing_table", "", "does not exist");
    expect_invalid("SELECT 1; SELECT 2", "", "one SQL statement");
    expect_invalid("SELECT $1", R"({"a":1})", "JSON array");
    expect_invalid("INSERT INTO t (id) VALUES (1)", "", "duplicate key");
    CHECK(conn->query("-- nothing", "") == "[]");

    // A failed statement aborts the transaction; its commit says so.
    conn->begin();
    conn->query("INSERT INTO t (s) VALUES ('lost')", "");
    CHECK_THROWS_AS(conn->query("SELECT * FROM missing_table", ""), StoreError);
    CHECK_THROWS_AS(conn->commit(), StoreError);
    CHECK_FALSE(conn->in_transaction());
    CHECK(json::parse(conn->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 2);
    CHECK_THROWS_AS(conn->commit(), StoreError);  // nothing open

    conn->begin();
    conn->query("INSERT INTO t (s) VALUES ('kept')", "");
    conn->commit();
    auto other = store.task_connection();
    CHECK(json::parse(other->query("SELECT count(*) AS n FROM t", ""))[0]["n"] == 3);
}

TEST_CASE("store (postgres): a connection the server dropped is replaced; writes and reads go on") {
    Schema schema;
    auto o = options_for(schema.url);
    o.on_write_error = [](const std::string &) {};
    PostgresStore store(o);
    Job before = make_job();
    store.insert_job(before);
    REQUIRE(store.get_job(before.id));
    // Every connection of this database but the one doing it is ended, as
    // a server restart would.
    store::postgres::Connection admin(schema.url, false);
    admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    // The read pool retries once on a fresh connection.
    CHECK(store.get_job(before.id));
    // The writer learns of the drop at its next BEGIN, and begins again on
    // a new connection: the write goes through.
    Job after = make_job();
    store.insert_job(after);
    CHECK(store.get_job(after.id));
    CHECK(store.check().ok());
}

namespace {

PostgresStore::Options host_options(const std::string &url, const std::string &id, double lease_s) {
    PostgresStore::Options o = options_for(url);
    o.host_id = id;
    o.lease_s = lease_s;
    o.on_write_error = [](const std::string &) {};
    return o;
}

template <class Pred>
bool within(std::chrono::milliseconds limit, Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

}  // namespace

TEST_CASE("store (postgres): a running job holds its host's lease; once a lost host's runs out, another fails it" *
          doctest::test_suite("concurrency")) {
    Schema schema;
    store::postgres::Connection sql(schema.url, false);
    auto a = std::make_unique<PostgresStore>(host_options(schema.url, "host-a", 1));
    PostgresStore b(host_options(schema.url, "host-b", 1));
    Job j = make_job();
    a->insert_job(j);
    REQUIRE(a->start_job(j.id, now_us()));
    CHECK_FALSE(b.start_job(j.id, now_us()));  // started once
    CHECK(sql.run(("SELECT run_by FROM jobs WHERE id = '" + j.id + "'").c_str()).text(0, 0) == "host-a");

    // While host-a beats, its job runs on past several leases.
    const auto hosts = b.hosts();
    REQUIRE(hosts.size() == 2);
    CHECK(hosts[0].id == "host-a");
    CHECK(hosts[1].id == "host-b");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past a lease: what is checked is that nothing happens
    CHECK(b.get_job(j.id)->status == JobStatus::running);

    a.reset();  // host-a is gone without ending its job
    REQUIRE(within(std::chrono::seconds(10), [&] { return b.get_job(j.id)->status == JobStatus::failed; }));
    auto lost = b.get_job(j.id);
    REQUIRE(lost->error);
    CHECK(*lost->error == "host host-a was lost while running this job");
    CHECK(lost->finished_at > 0);
    CHECK(b.hosts().size() == 1);  // host-a not heard of within a lease

    // A late end (host-a was only slow) does not undo the verdict.
    store::Store::JobEnd end;
    end.finished_at = now_us();
    end.status = JobStatus::completed;
    b.finish_job(j.id, std::move(end));
    b.flush();
    CHECK(b.get_job(j.id)->status == JobStatus::failed);
}

TEST_CASE("store (postgres): a job stored already running is its host's and holds a lease") {
    Schema schema;
    PostgresStore a(host_options(schema.url, "host-a", 30));
    Job j = make_job();
    j.status = JobStatus::running;  // its wait ran out while it ran on its submitter's request
    j.started_at = now_us();
    a.insert_job(j);
    store::postgres::Connection sql(schema.url, false);
    Rows row = sql.run(("SELECT run_by, lease_until IS NOT NULL FROM jobs WHERE id = '" + j.id + "'").c_str());
    CHECK(row.text(0, 0) == "host-a");
    CHECK(row.text(0, 1) == "t");
    // Another host starting does not take it for an interrupted one.
    PostgresStore b(host_options(schema.url, "host-b", 30));
    b.recover("the host stopped while this job was running", now_us());
    CHECK(b.get_job(j.id)->status == JobStatus::running);
}

TEST_CASE("store (postgres): a host restarted with its id fails its own interrupted jobs, not a live host's") {
    Schema schema;
    auto a = std::make_unique<PostgresStore>(host_options(schema.url, "host-a", 30));
    PostgresStore b(host_options(schema.url, "host-b", 30));
    Job mine = make_job(), theirs = make_job(), waiting = make_job();
    a->insert_job(mine);
    a->insert_job(theirs);
    a->insert_job(waiting);
    REQUIRE(a->start_job(mine.id, now_us()));
    REQUIRE(b.start_job(theirs.id, now_us()));
    a.reset();
    PostgresStore again(host_options(schema.url, "host-a", 30));
    const auto pending = again.recover("the host stopped while this job was running", now_us());
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].id == waiting.id);
    auto failed = again.get_job(mine.id);
    CHECK(failed->status == JobStatus::failed);
    CHECK(*failed->error == "the host stopped while this job was running");
    CHECK(again.get_job(theirs.id)->status == JobStatus::running);
}

TEST_CASE("store (postgres): a starting host takes back the pending jobs of its last run only") {
    Schema schema;
    auto a = std::make_unique<PostgresStore>(host_options(schema.url, "host-a", 1));
    PostgresStore b(host_options(schema.url, "host-b", 1));
    Job queued_by_a = make_job(), queued_by_b = make_job();
    a->insert_job(queued_by_a);
    b.insert_job(queued_by_b);

    // host-c starts while both beat: their queues are their own.
    {
        PostgresStore c(host_options(schema.url, "host-c", 1));
        CHECK(c.recover("stopped", now_us()).empty());
    }
    // host-b restarted (its id again) takes its own back.
    {
        PostgresStore b_again(host_options(schema.url, "host-b", 1));
        const auto mine = b_again.recover("stopped", now_us());
        REQUIRE(mine.size() == 1);
        CHECK(mine[0].id == queued_by_b.id);
    }
    // host-a is lost: its queue is left to claiming (by task), not taken
    // whole by the next host to start.
    a.reset();
    PostgresStore d(host_options(schema.url, "host-d", 1));
    REQUIRE(within(std::chrono::seconds(10), [&] {
        const auto live = d.hosts();
        return std::none_of(live.begin(), live.end(), [](const auto &h) { return h.id == "host-a"; });
    }));
    CHECK(d.recover("stopped", now_us()).empty());
    const auto claimed = d.claim_pending({{"add", "1"}}, 10);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].id == queued_by_a.id);
}

TEST_CASE("store (postgres): the end written by a host that lost the race to start a job changes nothing") {
    Schema schema;
    PostgresStore a(host_options(schema.url, "host-a", 30));
    PostgresStore b(host_options(schema.url, "host-b", 30));
    Job j = make_job();
    a.insert_job(j);
    REQUIRE(b.start_job(j.id, now_us()));
    CHECK_FALSE(a.start_job(j.id, now_us()));
    store::Store::JobEnd lost;
    lost.status = JobStatus::failed;
    lost.finished_at = now_us();
    lost.error = "the job did not start: it was no longer pending";
    a.finish_job(j.id, std::move(lost));
    a.flush();
    CHECK(b.get_job(j.id)->status == JobStatus::running);
    store::Store::JobEnd done;
    done.finished_at = now_us();
    b.finish_job(j.id, std::move(done));
    b.flush();
    CHECK(b.get_job(j.id)->status == JobStatus::completed);
}

TEST_CASE("store (postgres): bytes that are not UTF-8 are stored replaced, not refused with the batch") {
    Schema schema;
    PostgresStore store(options_for(schema.url));
    Job j = make_job();
    store.insert_job(j);
    store.update_progress(j.id, 0.5, "half \xff way");
    store::Store::JobEnd end;
    end.status = JobStatus::failed;
    end.finished_at = now_us();
    end.error = "bad \xc3 byte";
    std::promise<void> durable;
    store.finish_job(j.id, std::move(end), [&] { durable.set_value(); });
    REQUIRE(durable.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto got = store.get_job(j.id);
    REQUIRE(got);
    CHECK(got->progress_message == "half \xEF\xBF\xBD way");
    CHECK(*got->error == "bad \xEF\xBF\xBD byte");
    CHECK(store.check().ok());
}

namespace {

// What a host heard from the others (Store::FleetEvents), for the tests.
struct Heard {
    std::mutex mu;
    std::vector<std::string> changed, cancels;
    int work = 0;
    store::Store::FleetEvents events() {
        return {[this](const std::string &id) {
                    std::lock_guard lock(mu);
                    changed.push_back(id);
                },
                [this](const std::string &id) {
                    std::lock_guard lock(mu);
                    cancels.push_back(id);
                },
                [this] {
                    std::lock_guard lock(mu);
                    ++work;
                }};
    }
    bool has(const std::vector<std::string> &ids, const std::string &id) {
        std::lock_guard lock(mu);
        return std::find(ids.begin(), ids.end(), id) != ids.end();
    }
};

}  // namespace

TEST_CASE("store (postgres): hosts claim the pending jobs no live host holds, each once, for their tasks" *
          doctest::test_suite("concurrency")) {
    Schema schema;
    auto a = std::make_unique<PostgresStore>(host_options(schema.url, "host-a", 1));
    PostgresStore b(host_options(schema.url, "host-b", 1));
    Job held = make_job();
    a->insert_job(held);
    CHECK(b.claim_pending({{"add", "1"}}, 10).empty());  // host-a holds it and beats

    // Jobs queued by no host (stored for any): claimed oldest first, once.
    store::postgres::Connection sql(schema.url, false);
    std::vector<std::string> free_ids;
    for (int i = 0; i < 5; ++i) {
        free_ids.push_back(new_ulid_string());
        sql.run(("INSERT INTO jobs (id, task_name, status, submitted_at) VALUES ('" + free_ids.back() +
                 "', 'add', 'pending', 1)")
                    .c_str());
    }
    CHECK(b.claim_pending({{"other", "1"}}, 10).empty());  // not its tasks
    const auto first = b.claim_pending({{"other", "1"}, {"add", "1"}}, 3);
    REQUIRE(first.size() == 3);
    for (size_t i = 0; i < 3; ++i) CHECK(first[i].id == free_ids[i]);
    const auto rest = a->claim_pending({{"add", "1"}}, 10);
    REQUIRE(rest.size() == 2);
    CHECK(rest[0].id == free_ids[3]);
    CHECK(rest[1].id == free_ids[4]);
    CHECK(b.claim_pending({{"add", "1"}}, 10).empty());  // host-a holds those now

    // Two hosts claiming at once share the jobs out, none twice.
    for (int i = 0; i < 200; ++i)
        sql.run(("INSERT INTO jobs (id, task_name, status, submitted_at) VALUES ('" + new_ulid_string() +
                 "', 'add', 'pending', 1)")
                    .c_str());
    auto claim_all = [](PostgresStore &s) {
        std::vector<std::string> ids;
        for (;;) {
            auto got = s.claim_pending({{"add", "1"}}, 7);
            if (got.empty()) return ids;
            for (auto &j : got) ids.push_back(j.id);
        }
    };
    auto by_a = std::async(std::launch::async, [&] { return claim_all(*a); });
    auto by_b = claim_all(b);
    auto all = by_a.get();
    all.insert(all.end(), by_b.begin(), by_b.end());
    std::sort(all.begin(), all.end());
    CHECK(all.size() == 200);
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());

    // host-a is lost: after its lease, its queue is host-b's to claim.
    a.reset();
    std::vector<Job> taken;
    REQUIRE(within(std::chrono::seconds(10), [&] {
        auto got = b.claim_pending({{"add", "1"}}, 1000);
        taken.insert(taken.end(), got.begin(), got.end());
        return std::any_of(taken.begin(), taken.end(), [&](const Job &j) { return j.id == held.id; });
    }));
}

TEST_CASE("store (postgres): hosts hear of each other's job changes and cancels" * doctest::test_suite("concurrency")) {
    Schema schema;
    Heard heard_by_a, heard_by_b;  // outlive the stores that call them
    PostgresStore a(host_options(schema.url, "host-a", 1));
    PostgresStore b(host_options(schema.url, "host-b", 1));
    a.listen(heard_by_a.events());
    b.listen(heard_by_b.events());

    Job running = make_job(), waiting = make_job();
    a.insert_job(running);
    a.insert_job(waiting);
    REQUIRE(a.start_job(running.id, now_us()));
    CHECK(within(std::chrono::seconds(5), [&] { return heard_by_b.has(heard_by_b.changed, running.id); }));

    // A pending job canceled by host-b: durable at once, and host-a told.
    CHECK(b.cancel_pending(waiting.id, now_us()));
    CHECK(a.get_job(waiting.id)->status == JobStatus::canceled);
    CHECK(within(std::chrono::seconds(5), [&] { return heard_by_a.has(heard_by_a.cancels, waiting.id); }));
    CHECK_FALSE(b.cancel_pending(waiting.id, now_us()));  // not pending any more
    CHECK_FALSE(b.cancel_pending(running.id, now_us()));  // started: only its host can stop it
    CHECK(a.get_job(running.id)->status == JobStatus::running);

    // A running one: its host is asked, by a notice and in its row. A
    // host that missed the notice hears of it at its next heartbeat.
    a.listen({});
    b.ask_cancel(running.id);
    Heard late;
    a.listen(late.events());
    CHECK(within(std::chrono::seconds(5), [&] { return late.has(late.cancels, running.id); }));
    a.listen(heard_by_a.events());

    // Its end is heard of too; after listen({}) nothing more is delivered.
    store::Store::JobEnd end;
    end.status = JobStatus::canceled;
    end.finished_at = now_us();
    a.finish_job(running.id, std::move(end));
    a.flush();
    CHECK(within(std::chrono::seconds(5), [&] {
        std::lock_guard lock(heard_by_b.mu);
        return std::count(heard_by_b.changed.begin(), heard_by_b.changed.end(), running.id) >= 2;
    }));
    b.listen({});
    const size_t before = [&] {
        std::lock_guard lock(heard_by_b.mu);
        return heard_by_b.changed.size();
    }();
    CHECK(a.delete_job(running.id));
    CHECK(within(std::chrono::seconds(5), [&] { return heard_by_a.has(heard_by_a.changed, running.id); }));
    std::lock_guard lock(heard_by_b.mu);
    CHECK(heard_by_b.changed.size() == before);
}

TEST_CASE("store (postgres): a job is claimed only with the major version of its plugin it was accepted for") {
    Schema schema;
    PostgresStore v1(host_options(schema.url, "host-v1", 30));
    PostgresStore v2(host_options(schema.url, "host-v2", 30));
    store::postgres::Connection sql(schema.url, false);
    auto unheld = [&](const char *version) {
        const std::string id = new_ulid_string();
        sql.run(("INSERT INTO jobs (id, task_name, status, submitted_at, plugin_version) VALUES ('" + id +
                 "', 'add', 'pending', 1, " + (version ? "'" + std::string(version) + "'" : "NULL") + ")")
                    .c_str());
        return id;
    };
    const std::string for_1_2 = unheld("1.2.0"), for_2_0 = unheld("2.0.0"), from_before = unheld(nullptr);
    const auto by_v2 = v2.claim_pending({{"add", "2"}}, 10);
    REQUIRE(by_v2.size() == 2);  // its major, and one stored before versions were
    CHECK(by_v2[0].id == for_2_0);
    CHECK(by_v2[0].plugin_version == "2.0.0");
    CHECK(by_v2[1].id == from_before);
    const auto by_v1 = v1.claim_pending({{"add", "1"}}, 10);
    REQUIRE(by_v1.size() == 1);
    CHECK(by_v1[0].id == for_1_2);

    // A host that cannot run one lets it go: another claims it.
    v1.release_pending({for_1_2});
    CHECK(v2.claim_pending({{"add", "2"}}, 10).empty());
    CHECK(v1.claim_pending({{"add", "1"}}, 10).size() == 1);

    // The version that ran it is kept with its end.
    REQUIRE(v1.start_job(for_1_2, now_us()));
    store::Store::JobEnd end;
    end.status = JobStatus::completed;
    end.started_at = 1;
    end.finished_at = now_us();
    end.ran_version = "1.3.0";
    v1.finish_job(for_1_2, std::move(end));
    v1.flush();
    CHECK(v1.get_job(for_1_2)->ran_version == "1.3.0");
    CHECK(v1.get_job(for_1_2)->plugin_version == "1.2.0");
}

TEST_CASE("store (postgres): hosts describe their tasks; a job offered for any host is claimed where its task is") {
    Schema schema;
    PostgresStore a(host_options(schema.url, "host-a", 5));
    PostgresStore b(host_options(schema.url, "host-b", 5));
    auto info = [](const std::string &name, const std::string &version, const std::string &tags, const char *timeout) {
        return R"({"name": ")" + name + R"(", "tags": )" + tags + R"(, "timeout_s": )" + timeout +
               R"(, "parameters_schema": {"type": "object", "properties": {"n": {"type": "integer"}},
                   "required": ["n"], "additionalProperties": false},
                  "plugin": {"name": "p", "version": ")" +
               version + R"("}})";
    };
    a.describe_host("127.0.0.1:1", "test", "[]", "[" + info("t", "9.1.0", R"(["x", "y"])", "null") + "]");
    b.describe_host("127.0.0.1:2", "test", "[]",
                    "[" + info("t", "10.0.0", R"(["x"])", "5") + "," + info("u", "1.0.0", "[]", "null") + "]");

    jobs::FleetTasks fleet(a);
    REQUIRE(within(std::chrono::seconds(10), [&] {
        auto now = fleet.get(std::chrono::milliseconds(0));
        auto t = now->tasks.find("t");
        return t != now->tasks.end() && t->second.hosts.size() == 2 && now->tasks.count("u") == 1;
    }));
    auto catalogue = fleet.get(std::chrono::milliseconds(1000));
    const jobs::FleetTasks::Task &t = catalogue->tasks.at("t");
    CHECK(t.plugin_version == "10.0.0");  // the newest major, compared as a number
    CHECK(t.hosts == std::vector<std::string>{"host-a", "host-b"});
    CHECK(t.tags == std::vector<std::string>{"x"});
    CHECK(t.has_tags({"x"}));
    CHECK_FALSE(t.has_tags({"x", "y"}));
    CHECK(t.default_timeout_s == 5);
    REQUIRE(t.params_schema);
    CHECK(t.params_schema->check_params(nlohmann::json{{"n", 1}}));
    CHECK_FALSE(t.params_schema->check_params(nlohmann::json{{"n", "one"}}));
    CHECK(catalogue->tasks.at("u").hosts == std::vector<std::string>{"host-b"});
    const jobs::FleetTasks::Task *found = nullptr;
    fleet.find("u", found);
    CHECK(found != nullptr);
    fleet.find("nope", found);
    CHECK(found == nullptr);

    // Offered: held by no host, the fleet is told there is work, and only a
    // host with its task at that major claims it.
    std::atomic<int> told{0};
    store::Store::FleetEvents events;
    events.work_available = [&] { told.fetch_add(1); };
    b.listen(std::move(events));
    Job j = make_job();
    j.task_name = "t";
    j.plugin_version = "10.0.0";
    const int before = told.load();
    a.offer_job(j);
    store::postgres::Connection sql(schema.url, false);
    CHECK(sql.run(("SELECT queued_by IS NULL FROM jobs WHERE id = '" + j.id + "'").c_str()).text(0, 0) == "t");
    CHECK(within(std::chrono::seconds(5), [&] { return told.load() > before; }));
    CHECK(a.claim_pending({{"t", "9"}}, 10).empty());
    auto claimed = b.claim_pending({{"t", "10"}}, 10);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].id == j.id);
    b.listen({});
}

TEST_CASE("store (postgres): a retry-safe job of a lost host is queued again for any host, not failed") {
    Schema schema;
    auto a = std::make_unique<PostgresStore>(host_options(schema.url, "host-a", 1));
    PostgresStore b(host_options(schema.url, "host-b", 1));
    Job safe = make_job();
    safe.retry_safe = true;
    Job plain = make_job();
    for (const Job *j : {&safe, &plain}) {
        a->insert_job(*j);
        REQUIRE(a->start_job(j->id, now_us()));
    }
    a.reset();  // host-a is gone without ending them
    REQUIRE(within(std::chrono::seconds(10), [&] { return b.get_job(plain.id)->status == JobStatus::failed; }));
    auto again = b.get_job(safe.id);
    CHECK(again->status == JobStatus::pending);
    CHECK(again->run_by.empty());
    CHECK_FALSE(again->error);
    auto claimed = b.claim_pending({{"add", ""}}, 10);
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].id == safe.id);
    REQUIRE(b.start_job(safe.id, now_us()));
    CHECK(b.get_job(safe.id)->attempts == 2);
    CHECK(b.get_job(safe.id)->run_by == "host-b");
}
