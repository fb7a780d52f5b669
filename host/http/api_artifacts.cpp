#include <map>

#include "http/api.hpp"
#include "http/problem.hpp"
#include "model/render.hpp"
#include "store/store.hpp"
#include "util/json_text.hpp"
#include "util/ulid.hpp"

namespace taskhost::http {

using model::render_artifact;
using nlohmann::json;

namespace {

// Reads ArtifactIn ({"data", "parent_id", "tags", "id"}); false + 400 if bad.
bool parse_artifact_input(const httplib::Request &req, httplib::Response &res, bool create, model::ArtifactInput &in) {
    json body;
    if (!parse_json_body(req, res, body)) return false;
    if (!body.is_object()) {
        problem(res, 400, R"(The body must be a JSON object such as {"data": ...})", req.path);
        return false;
    }
    if (auto it = body.find("data"); it != body.end() && !it->is_null()) {
        in.data_json = it->dump(-1, ' ', false, json::error_handler_t::replace);
    } else if (create) {
        problem(res, 400, "data is required and must not be null", req.path);
        return false;
    }
    if (auto it = body.find("parent_id"); it != body.end() && !it->is_null()) {
        if (!it->is_string() || !is_valid_ulid(it->get<std::string>())) {
            problem(res, 400, "parent_id must be a ULID", req.path);
            return false;
        }
        in.parent_id = it->get<std::string>();
    }
    if (auto it = body.find("tags"); it != body.end() && !it->is_null()) {
        bool strings = it->is_array();
        if (strings)
            for (const auto &t : *it) strings = strings && t.is_string();
        if (!strings) {
            problem(res, 400, "tags must be an array of strings", req.path);
            return false;
        }
        in.tags_json = it->dump();
    }
    if (create) {
        if (auto it = body.find("id"); it != body.end() && !it->is_null()) {
            if (!it->is_string() || !is_valid_ulid(it->get<std::string>())) {
                problem(res, 400, "id must be a ULID", req.path);
                return false;
            }
            in.id = it->get<std::string>();
        }
    }
    return true;
}

// As the original: its errors name the artifact's own path, also for
// $tree and $expand.
std::string artifact_path(std::string_view id) { return "/api/v1/artifacts/" + std::string(id); }

bool valid_id(httplib::Response &res, std::string_view id) {
    if (is_valid_ulid(id)) return true;
    problem(res, 400, ProblemKind{"invalid-ulid", "Invalid ULID Format"}, "Invalid ULID format: " + std::string(id),
            artifact_path(id));
    return false;
}

// The original's words: "Entity with id X not found" from the record
// routes, "Artifact with id X not found" from $tree and $expand.
void not_found(httplib::Response &res, std::string_view id, std::string_view entity = "Entity") {
    problem(res, 404, ProblemKind{"not-found", "Resource Not Found"},
            std::string(entity) + " with id " + std::string(id) + " not found", artifact_path(id));
}

}  // namespace

// An absolute URL of `path` as the client reached the host: through a
// proxy, the scheme and host it names (deploy/nginx sets both).
std::string absolute_url(const httplib::Request &req, std::string_view path) {
    std::string scheme = req.get_header_value("X-Forwarded-Proto");
    if (scheme != "https") scheme = "http";
    std::string host = req.get_header_value("X-Forwarded-Host");
    if (host.empty()) host = req.get_header_value("Host");
    if (host.empty() || host.find_first_of("/\\ @?#") != std::string::npos) return std::string(path);
    return scheme + "://" + host + std::string(path);
}

void Api::list_artifacts(const httplib::Request &req, httplib::Response &res) {
    Paging paging;
    if (!parse_paging(req, res, paging)) return;
    auto artifacts = s_.store.list_artifacts(paging.limit, paging.offset);
    std::string items = "[";
    for (const auto &a : artifacts) {
        if (items.size() > 1) items.push_back(',');
        render_artifact(items, a);
    }
    items.push_back(']');
    list_response(res, "/api/v1/artifacts", "", paging, std::move(items), artifacts.size(),
                  [&] { return s_.store.count_artifacts(); });
}

void Api::create_artifact(const httplib::Request &req, httplib::Response &res) {
    model::ArtifactInput in;
    if (!parse_artifact_input(req, res, true, in)) return;
    try {
        auto saved = s_.store.save_artifact(in);
        res.set_header("Location", absolute_url(req, artifact_path(saved.id)));
        json_response(res, 201, render_artifact(saved));
    } catch (const store::StoreError &e) {
        problem(res, e.error(), req.path);
    }
}

void Api::artifact_stats(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, "{\"total\":" + std::to_string(s_.store.count_artifacts()) + "}");
}

void Api::artifact_schema(const httplib::Request &, httplib::Response &res) {
    json_response(res, 200, document_.artifact_schema());
}

void Api::get_artifact(const httplib::Request &, httplib::Response &res, std::string_view id) {
    if (!valid_id(res, id)) return;
    auto artifact = s_.store.get_artifact(std::string(id));
    if (!artifact) return not_found(res, id);
    json_response(res, 200, render_artifact(*artifact));
}

void Api::update_artifact(const httplib::Request &req, httplib::Response &res, std::string_view id) {
    if (!valid_id(res, id)) return;
    model::ArtifactInput in;
    if (!parse_artifact_input(req, res, false, in)) return;
    try {
        auto updated = s_.store.update_artifact(std::string(id), in);
        if (!updated) return not_found(res, id);
        json_response(res, 200, render_artifact(*updated));
    } catch (const store::StoreError &e) {
        problem(res, e.error(), req.path);
    }
}

void Api::delete_artifact(const httplib::Request &, httplib::Response &res, std::string_view id) {
    if (!valid_id(res, id)) return;
    if (!s_.store.delete_artifact(std::string(id))) return not_found(res, id);
    res.status = 204;
}

void Api::artifact_tree(const httplib::Request &, httplib::Response &res, std::string_view id, bool expand_only) {
    if (!valid_id(res, id)) return;
    const Hierarchy &h = options_.hierarchy;
    auto node_open = [&](std::string &out, const model::Artifact &a) {
        render_artifact(out, a);
        out.pop_back();  // reopen the object to add the tree fields
        out += ",\"level_label\":";
        json_text::append_string(out, h.label(a.level));
        out += ",\"hierarchy\":";
        json_text::append_string(out, h.name);
        out += ",\"children\":";
    };
    if (expand_only) {
        auto artifact = s_.store.get_artifact(std::string(id));
        if (!artifact) return not_found(res, id, "Artifact");
        std::string out;
        node_open(out, *artifact);
        out += "null}";
        return json_response(res, 200, std::move(out));
    }
    auto nodes = s_.store.artifact_subtree(std::string(id));
    if (nodes.empty()) return not_found(res, id, "Artifact");
    std::map<std::string_view, std::vector<const model::Artifact *>> children;
    for (size_t i = 1; i < nodes.size(); ++i)
        if (nodes[i].parent_id) children[*nodes[i].parent_id].push_back(&nodes[i]);
    std::string out;
    // Iterative depth-first rendering: a deep chain must not exhaust the stack.
    struct Frame {
        const model::Artifact *node;
        size_t next_child = 0;
    };
    std::vector<Frame> stack{{&nodes[0]}};
    node_open(out, nodes[0]);
    out.push_back('[');
    while (!stack.empty()) {
        Frame &top = stack.back();
        auto it = children.find(top.node->id);
        if (it != children.end() && top.next_child < it->second.size()) {
            if (top.next_child > 0) out.push_back(',');
            const model::Artifact *child = it->second[top.next_child++];
            node_open(out, *child);
            out.push_back('[');
            stack.push_back({child});
        } else {
            out += "]}";
            stack.pop_back();
        }
    }
    json_response(res, 200, std::move(out));
}

std::string Hierarchy::label(int level) const {
    if (level >= 0 && static_cast<size_t>(level) < level_labels.size()) return level_labels[level];
    return "level_" + std::to_string(level);
}

}  // namespace taskhost::http
