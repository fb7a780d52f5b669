// /api/v1/artifacts: CRUD, hierarchy levels, $tree / $expand, paging, $stats.
#include "test_util.hpp"

using namespace th_test;

namespace {

const std::string kAbsent = "01K72P5N5KCRM6MD3BRE4P0999";

json create(httplib::Client &cli, const json &body) {
    auto res = post_json(cli, "/api/v1/artifacts", body);
    REQUIRE_STATUS(res, 201);
    json a = body_json(res);
    REQUIRE(is_ulid(a["id"]));
    return a;
}

json create_node(httplib::Client &cli, const std::string &name, const json &parent = nullptr) {
    json body = {{"data", {{"name", name}}}};
    if (!parent.is_null()) body["parent_id"] = parent;
    return create(cli, body);
}

int stats_total(httplib::Client &cli) { return get_json(cli, "/api/v1/artifacts/$stats")["total"].get<int>(); }

}  // namespace

TEST_SUITE("artifacts") {

TEST_CASE("POST a root: 201, Location, level 0, full record") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    auto res = post_json(cli, "/api/v1/artifacts", {{"data", {{"name", "root"}}}});
    REQUIRE_STATUS(res, 201);
    json a = body_json(res);
    REQUIRE(is_ulid(a["id"]));
    // Absolute, as the original's: the scheme and host the client used.
    const std::string path = "/api/v1/artifacts/" + a["id"].get<std::string>();
    CHECK(res->get_header_value("Location") == "http://127.0.0.1:" + std::to_string(svc.host().port()) + path);
    // Through a proxy, the ones it names (deploy/nginx sends both).
    auto proxied = cli.Post("/api/v1/artifacts",
                            httplib::Headers{{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "tasks.example.org"}},
                            R"({"data": 1})", "application/json");
    REQUIRE_STATUS(proxied, 201);
    CHECK(proxied->get_header_value("Location") ==
          "https://tasks.example.org/api/v1/artifacts/" + body_json(proxied)["id"].get<std::string>());
    CHECK(a["data"] == json{{"name", "root"}});
    CHECK(a["level"] == 0);
    CHECK(a["parent_id"].is_null());
    CHECK(a["tags"] == json::array());
    CHECK(is_iso_utc(a["created_at"]));
    CHECK(is_iso_utc(a["updated_at"]));
    CHECK(get_artifact(cli, a["id"]) == a);
}

TEST_CASE("POST keeps tags and any JSON data") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json a = create(cli, {{"data", json::array({1, 2, 3})}, {"tags", json::array({"x", "y"})}});
    CHECK(a["data"] == json::array({1, 2, 3}));
    CHECK(a["tags"] == json::array({"x", "y"}));
    json s = create(cli, {{"data", "just a string"}});
    CHECK(s["data"] == "just a string");
    json u = create(cli, {{"data", {{"text", "héllo \u2603 \"quoted\""}}}});
    CHECK(get_artifact(cli, u["id"])["data"]["text"] == "héllo \u2603 \"quoted\"");
}

TEST_CASE("levels follow the parent: child 1, grandchild 2") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json root = create_node(cli, "root");
    json child = create_node(cli, "child", root["id"]);
    CHECK(child["level"] == 1);
    CHECK(child["parent_id"] == root["id"]);
    json grand = create_node(cli, "grandchild", child["id"]);
    CHECK(grand["level"] == 2);
    CHECK(grand["parent_id"] == child["id"]);
    // A client-supplied level is ignored.
    json lying = create(cli, {{"data", 1}, {"parent_id", root["id"]}, {"level", 7}});
    CHECK(lying["level"] == 1);
}

TEST_CASE("$tree nests children with level labels; $expand has children null") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json root = create_node(cli, "root");
    json child = create_node(cli, "child", root["id"]);
    json grand = create_node(cli, "grandchild", child["id"]);
    json leaf2 = create_node(cli, "second child", root["id"]);

    json tree = get_json(cli, "/api/v1/artifacts/" + root["id"].get<std::string>() + "/$tree");
    CHECK(tree["id"] == root["id"]);
    CHECK(tree["data"] == json{{"name", "root"}});
    CHECK(tree["level"] == 0);
    CHECK(tree["level_label"] == "task_run");
    CHECK(tree["hierarchy"] == "task_results");
    REQUIRE(tree["children"].is_array());
    REQUIRE(tree["children"].size() == 2);
    const json &c = tree["children"][0];  // insertion order
    CHECK(c["id"] == child["id"]);
    CHECK(c["level"] == 1);
    CHECK(c["level_label"] == "output");
    CHECK(c["hierarchy"] == "task_results");
    CHECK(c["parent_id"] == root["id"]);
    REQUIRE(c["children"].size() == 1);
    const json &g = c["children"][0];
    CHECK(g["id"] == grand["id"]);
    CHECK(g["level"] == 2);
    CHECK(g["level_label"] == "level_2");
    CHECK(g["data"] == json{{"name", "grandchild"}});
    CHECK(g["children"] == json::array());
    CHECK(tree["children"][1]["id"] == leaf2["id"]);
    CHECK(tree["children"][1]["children"] == json::array());

    // A subtree from the middle.
    json sub = get_json(cli, "/api/v1/artifacts/" + child["id"].get<std::string>() + "/$tree");
    CHECK(sub["id"] == child["id"]);
    CHECK(sub["level_label"] == "output");
    REQUIRE(sub["children"].size() == 1);
    CHECK(sub["children"][0]["id"] == grand["id"]);

    // A single root without children.
    json lone = create_node(cli, "lone");
    json lone_tree = get_json(cli, "/api/v1/artifacts/" + lone["id"].get<std::string>() + "/$tree");
    CHECK(lone_tree["children"] == json::array());

    json expand = get_json(cli, "/api/v1/artifacts/" + root["id"].get<std::string>() + "/$expand");
    CHECK(expand["id"] == root["id"]);
    CHECK(expand["children"].is_null());
    CHECK(expand["level_label"] == "task_run");
    CHECK(expand["hierarchy"] == "task_results");
    CHECK(expand["data"] == json{{"name", "root"}});
    json expand_child = get_json(cli, "/api/v1/artifacts/" + child["id"].get<std::string>() + "/$expand");
    CHECK(expand_child["level_label"] == "output");
    CHECK(expand_child["children"].is_null());
}

TEST_CASE("$expand of a task result artifact") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    auto done = run_task(cli, "hello");
    json e = get_json(cli, "/api/v1/artifacts/" + done.job["artifact_id"].get<std::string>() + "/$expand");
    CHECK(e["hierarchy"] == "task_results");
    CHECK(e["level_label"] == "task_run");
    CHECK(e["children"].is_null());
    CHECK(e["data"]["task_name"] == "hello");
}

TEST_CASE("PUT reparents and cascades levels to descendants") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json root1 = create_node(cli, "root1");
    json root2 = create_node(cli, "root2");
    json child = create_node(cli, "child", root1["id"]);
    json grand = create_node(cli, "grandchild", child["id"]);
    std::string child_path = "/api/v1/artifacts/" + child["id"].get<std::string>();

    auto res = put_json(cli, child_path, {{"parent_id", root2["id"]}});
    REQUIRE_STATUS(res, 200);
    json moved = body_json(res);
    CHECK(moved["parent_id"] == root2["id"]);
    CHECK(moved["level"] == 1);
    CHECK(moved["data"] == json{{"name", "child"}});  // data untouched
    CHECK(get_artifact(cli, grand["id"])["level"] == 2);
    json tree2 = get_json(cli, "/api/v1/artifacts/" + root2["id"].get<std::string>() + "/$tree");
    REQUIRE(tree2["children"].size() == 1);
    CHECK(tree2["children"][0]["id"] == child["id"]);
    CHECK(get_json(cli, "/api/v1/artifacts/" + root1["id"].get<std::string>() + "/$tree")["children"] == json::array());

    // Deeper: under another level-1 node, the whole subtree moves down one.
    json other = create_node(cli, "other", root1["id"]);
    moved = body_json(put_json(cli, child_path, {{"parent_id", other["id"]}}));
    CHECK(moved["level"] == 2);
    CHECK(get_artifact(cli, grand["id"])["level"] == 3);

    // Updating only the data keeps parent and level.
    res = put_json(cli, child_path, {{"data", {{"name", "renamed"}}}});
    REQUIRE_STATUS(res, 200);
    json renamed = body_json(res);
    CHECK(renamed["data"] == json{{"name", "renamed"}});
    CHECK(renamed["parent_id"] == other["id"]);
    CHECK(renamed["level"] == 2);
    CHECK(renamed["created_at"] == child["created_at"]);
    CHECK(renamed["updated_at"].get<std::string>() >= renamed["created_at"].get<std::string>());
    CHECK(get_artifact(cli, grand["id"])["level"] == 3);
}

TEST_CASE("PUT refuses a cycle, a missing parent and a malformed parent_id") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json root = create_node(cli, "root");
    json child = create_node(cli, "child", root["id"]);
    std::string root_path = "/api/v1/artifacts/" + root["id"].get<std::string>();
    check_problem(put_json(cli, root_path, {{"parent_id", child["id"]}}), 400);
    check_problem(put_json(cli, root_path, {{"parent_id", root["id"]}}), 400);
    check_problem(put_json(cli, root_path, {{"parent_id", kAbsent}}), 400);
    check_problem(put_json(cli, root_path, {{"parent_id", "nope"}}), 400);
    // Unchanged.
    CHECK(get_artifact(cli, root["id"])["parent_id"].is_null());
    CHECK(get_artifact(cli, root["id"])["level"] == 0);
    check_problem(put_json(cli, "/api/v1/artifacts/" + kAbsent, {{"data", 1}}), 404, "not found");
}

TEST_CASE("$schema: the JSON Schema of ArtifactOut, and it describes a real artifact") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    json schema = get_json(svc.cli(), "/api/v1/artifacts/$schema");
    CHECK(schema["type"] == "object");
    CHECK(schema["title"] == "ArtifactOut");
    auto created = post_json(svc.cli(), "/api/v1/artifacts", {{"data", {{"x", 1}}}, {"tags", {"t"}}});
    REQUIRE_STATUS(created, 201);
    json artifact = body_json(created);
    // Every field of a real artifact is described, and every required one is present.
    for (const auto &item : artifact.items()) CHECK_MESSAGE(schema["properties"].contains(item.key()), item.key());
    for (const auto &key : schema["required"]) CHECK_MESSAGE(artifact.contains(key.get<std::string>()), key);
    CHECK(schema["properties"].size() == artifact.size());
    check_problem(svc.cli().Delete("/api/v1/artifacts/$schema"), 405);
}

TEST_CASE("DELETE: 204, $stats decremented, then 404 problem+json") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json a = create_node(cli, "a");
    create_node(cli, "b");
    CHECK(stats_total(cli) == 2);
    std::string path = "/api/v1/artifacts/" + a["id"].get<std::string>();
    auto res = cli.Delete(path.c_str());
    REQUIRE_STATUS(res, 204);
    CHECK(res->body.empty());
    CHECK(stats_total(cli) == 1);
    json p = check_problem(cli.Get(path.c_str()), 404, "not found");
    CHECK_CONTAINS(p["detail"].get<std::string>(), a["id"].get<std::string>());
    check_problem(cli.Delete(path.c_str()), 404);
}

TEST_CASE("DELETE a parent: children keep their level and lose parent_id") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    json root = create_node(cli, "root");
    json child = create_node(cli, "child", root["id"]);
    json grand = create_node(cli, "grandchild", child["id"]);
    REQUIRE_STATUS(cli.Delete(("/api/v1/artifacts/" + child["id"].get<std::string>()).c_str()), 204);
    json g = get_artifact(cli, grand["id"]);
    CHECK(g["parent_id"].is_null());
    CHECK(g["level"] == 2);
    json r = get_json(cli, "/api/v1/artifacts/" + root["id"].get<std::string>() + "/$tree");
    CHECK(r["children"] == json::array());
}

TEST_CASE("invalid ULID → 400 problem+json on every artifact route") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    // The original's type and title, and the artifact's path as instance, $tree's too.
    for (const char *path : {"/api/v1/artifacts/not-a-ulid", "/api/v1/artifacts/not-a-ulid/$tree"}) {
        json p = check_problem(cli.Get(path), 400, "Invalid ULID format: not-a-ulid");
        CHECK(p["type"] == "urn:taskhost:error:invalid-ulid");
        CHECK(p["title"] == "Invalid ULID Format");
        CHECK(p["instance"] == "/api/v1/artifacts/not-a-ulid");
    }
    check_problem(cli.Get("/api/v1/artifacts/not-a-ulid/$expand"), 400, "Invalid ULID");
    check_problem(put_json(cli, "/api/v1/artifacts/not-a-ulid", {{"data", 1}}), 400, "Invalid ULID");
    check_problem(cli.Delete("/api/v1/artifacts/not-a-ulid"), 400, "Invalid ULID");
    check_problem(cli.Get("/api/v1/artifacts/01k72p5n5kcrm6md3bre4p0999"), 400, "Invalid ULID");  // lowercase
    check_problem(cli.Get("/api/v1/artifacts/81K72P5N5KCRM6MD3BRE4P0999"), 400, "Invalid ULID");  // > 48 bits
}

TEST_CASE("absent ULID → 404 for GET, $tree, $expand") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    // The original's words: "Entity" from the record routes, "Artifact" from $tree and $expand.
    const std::string path = "/api/v1/artifacts/" + kAbsent;
    json p = check_problem(cli.Get(path.c_str()), 404, "Entity with id " + kAbsent + " not found");
    CHECK(p["type"] == "urn:taskhost:error:not-found");
    CHECK(p["title"] == "Resource Not Found");
    CHECK(p["instance"] == path);
    const std::string msg = "Artifact with id " + kAbsent + " not found";
    CHECK(check_problem(cli.Get((path + "/$tree").c_str()), 404, msg)["instance"] == path);
    check_problem(cli.Get((path + "/$expand").c_str()), 404, msg);
    check_problem(cli.Delete(path.c_str()), 404, "Entity with id " + kAbsent + " not found");
}

TEST_CASE("POST refusals: no data, null data, missing parent, bad body") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    check_problem(post_json(cli, "/api/v1/artifacts", json::object()), 400, "data");
    check_problem(post_json(cli, "/api/v1/artifacts", {{"data", nullptr}}), 400, "data");
    check_problem(post_json(cli, "/api/v1/artifacts", {{"data", 1}, {"parent_id", kAbsent}}), 400);
    check_problem(post_json(cli, "/api/v1/artifacts", {{"data", 1}, {"parent_id", "nope"}}), 400, "parent_id");
    check_problem(post_json(cli, "/api/v1/artifacts", {{"data", 1}, {"tags", "x"}}), 400, "tags");
    check_problem(cli.Post("/api/v1/artifacts", "{not json", "application/json"), 400, "JSON");
    check_problem(cli.Post("/api/v1/artifacts", "[1]", "application/json"), 400);
    check_problem(cli.Post("/api/v1/artifacts", "", "application/json"), 400);
    CHECK(stats_total(cli) == 0);
}

TEST_CASE("list: every field, insertion order") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    CHECK(get_json(cli, "/api/v1/artifacts") == json::array());
    std::vector<std::string> ids;
    json root = create_node(cli, "n0");
    ids.push_back(root["id"]);
    for (int i = 1; i < 4; ++i) ids.push_back(create_node(cli, "n" + std::to_string(i), root["id"])["id"]);
    json list = get_json(cli, "/api/v1/artifacts");
    REQUIRE(list.is_array());
    REQUIRE(list.size() == 4);
    for (size_t i = 0; i < list.size(); ++i) {
        const json &a = list[i];
        INFO(a.dump());
        CHECK(a["id"] == ids[i]);
        for (const char *key : {"id", "data", "parent_id", "level", "created_at", "updated_at", "tags"})
            CHECK_MESSAGE(a.contains(key), key);
        CHECK(a["data"]["name"] == "n" + std::to_string(i));
        CHECK(a["level"] == (i == 0 ? 0 : 1));
    }
}

TEST_CASE("paging: ?page=&size= answers an envelope") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(create_node(cli, "p" + std::to_string(i))["id"]);
    json p1 = get_json(cli, "/api/v1/artifacts?page=1&size=3");
    REQUIRE(p1.is_object());
    REQUIRE(p1["items"].is_array());
    CHECK(p1["items"].size() == 3);
    CHECK(p1["total"] == 5);
    CHECK(p1["page"] == 1);
    CHECK(p1["size"] == 3);
    CHECK(p1["pages"] == 2);
    CHECK(p1["items"][0]["id"] == ids[0]);
    json p2 = get_json(cli, "/api/v1/artifacts?page=2&size=3");
    REQUIRE(p2["items"].size() == 2);
    CHECK(p2["items"][0]["id"] == ids[3]);
    CHECK(p2["items"][1]["id"] == ids[4]);
    CHECK(p2["page"] == 2);
    json p3 = get_json(cli, "/api/v1/artifacts?page=3&size=3");
    CHECK(p3["items"] == json::array());
    CHECK(p3["total"] == 5);

    check_problem(cli.Get("/api/v1/artifacts?page=0&size=3"), 400, "page");
    check_problem(cli.Get("/api/v1/artifacts?page=1&size=0"), 400);
    check_problem(cli.Get("/api/v1/artifacts?page=1"), 400, "together");
    check_problem(cli.Get("/api/v1/artifacts?page=x&size=3"), 400);
}

TEST_CASE("$stats counts every artifact, task results included") {
    Service svc(ServiceOptions::examples({"demo.so"}));
    auto &cli = svc.cli();
    CHECK(stats_total(cli) == 0);
    run_task(cli, "hello");
    CHECK(stats_total(cli) == 1);
    create_node(cli, "x");
    CHECK(stats_total(cli) == 2);
}

}  // TEST_SUITE("artifacts")
