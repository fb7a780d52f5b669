#include "store/sqlite/artifact_sql.hpp"

#include "util/clock.hpp"
#include "util/ulid.hpp"

namespace taskhost::store::sqlite {

using model::Artifact;
using model::ArtifactInput;

namespace {

// Statements are cached per connection, keyed by these pointers.
#define ARTIFACT_COLS "id, parent_id, level, data, tags, created_at, updated_at"

constexpr char kArtifactLevel[] = "SELECT level FROM artifacts WHERE id = ?1";
constexpr char kArtifactForWrite[] = "SELECT parent_id, level, data, tags, created_at FROM artifacts WHERE id = ?1";
constexpr char kInsertArtifact[] = "INSERT INTO artifacts (" ARTIFACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
constexpr char kUpdateArtifact[] =
    "UPDATE artifacts SET parent_id = ?2, level = ?3, data = ?4, tags = ?5, updated_at = ?6 WHERE id = ?1";
// Is ?2 an ancestor of ?1 (parent, grandparent, …)? UNION stops on any loop.
constexpr char kIsAncestor[] =
    "WITH RECURSIVE anc(id) AS ("
    "  SELECT parent_id FROM artifacts WHERE id = ?1"
    "  UNION SELECT a.parent_id FROM artifacts a JOIN anc ON a.id = anc.id"
    ") SELECT 1 FROM anc WHERE id = ?2 LIMIT 1";
// Every descendant of ?1 gets ?2 + its depth below ?1, in one statement.
constexpr char kCascadeLevels[] =
    "WITH RECURSIVE sub(id, depth) AS ("
    "  SELECT id, 1 FROM artifacts WHERE parent_id = ?1"
    "  UNION SELECT a.id, sub.depth + 1 FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    "  WHERE sub.depth < 1000000"
    ") UPDATE artifacts SET level = ?2 + sub.depth FROM sub WHERE artifacts.id = sub.id";
constexpr char kDeleteArtifact[] = "DELETE FROM artifacts WHERE id = ?1";
constexpr char kGetArtifact[] = "SELECT " ARTIFACT_COLS " FROM artifacts WHERE id = ?1";
constexpr char kListArtifacts[] = "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY seq LIMIT ?1 OFFSET ?2";
constexpr char kCountArtifacts[] = "SELECT count(*) FROM artifacts";
constexpr char kSubtree[] =
    "WITH RECURSIVE sub(id) AS ("
    "  SELECT id FROM artifacts WHERE id = ?1"
    "  UNION SELECT a.id FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    ") SELECT a.id, a.parent_id, a.level, a.data, a.tags, a.created_at, a.updated_at "
    "FROM artifacts a JOIN sub ON a.id = sub.id ORDER BY a.id <> ?1, a.seq";

#undef ARTIFACT_COLS

[[noreturn]] void invalid(const std::string &msg) { throw StoreError(StoreError::Kind::invalid, msg); }

Artifact read_artifact(const Stmt &s) {
    Artifact a;
    a.id = s.text(0);
    a.parent_id = s.opt_text(1);
    a.level = static_cast<int>(s.i64(2));
    a.data_json = s.text(3);
    a.tags_json = s.text(4);
    a.created_at = s.i64(5);
    a.updated_at = s.i64(6);
    return a;
}

// Level of an existing parent, or StoreError(invalid) naming it.
int parent_level(Connection &w, const std::string &parent_id) {
    Stmt s(w, kArtifactLevel);
    s.bind(1, std::string_view(parent_id));
    if (!s.step()) invalid("parent artifact " + parent_id + " does not exist");
    return static_cast<int>(s.i64(0));
}

void check_no_cycle(Connection &w, const std::string &id, const std::string &parent_id) {
    if (parent_id == id) invalid("artifact " + id + " cannot be its own parent");
    Stmt s(w, kIsAncestor);
    s.bind(1, std::string_view(parent_id)).bind(2, std::string_view(id));
    if (s.step())
        invalid("artifact " + parent_id + " cannot be the parent of " + id + ": it is one of its descendants");
}

void cascade(Connection &w, const std::string &id, int level) {
    Stmt(w, kCascadeLevels).bind(1, std::string_view(id)).bind(2, static_cast<int64_t>(level)).run();
}

void update_row(Connection &w, const Artifact &a) {
    Stmt s(w, kUpdateArtifact);
    s.bind(1, std::string_view(a.id)).bind(2, a.parent_id).bind(3, static_cast<int64_t>(a.level));
    s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, a.updated_at).run();
}

struct Existing {
    std::optional<std::string> parent_id;
    int level = 0;
    std::string data, tags;
    int64_t created_at = 0;
};
std::optional<Existing> load_for_write(Connection &w, const std::string &id, bool with_content) {
    Stmt s(w, kArtifactForWrite);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    Existing e;
    e.parent_id = s.opt_text(0);
    e.level = static_cast<int>(s.i64(1));
    if (with_content) {
        e.data = s.text(2);
        e.tags = s.text(3);
    }
    e.created_at = s.i64(4);
    return e;
}

// Create, or replace the content of an existing id (created_at kept).
Artifact save(Connection &w, const std::string &id, const std::string &data,
              const std::optional<std::string> &parent_id, const std::optional<std::string> &tags, int64_t now) {
    Artifact a;
    a.id = id;
    a.parent_id = parent_id;
    a.level = parent_id ? parent_level(w, *parent_id) + 1 : 0;
    a.data_json = data;
    if (tags) a.tags_json = *tags;
    a.created_at = a.updated_at = now;

    if (auto old = load_for_write(w, id, false)) {
        if (parent_id) check_no_cycle(w, id, *parent_id);
        a.created_at = old->created_at;
        update_row(w, a);
        if (old->parent_id != a.parent_id || old->level != a.level) cascade(w, id, a.level);
    } else {
        insert_artifact_row(w, a);
    }
    return a;
}

std::optional<Artifact> update(Connection &w, const std::string &id, const ArtifactInput &in) {
    auto old = load_for_write(w, id, true);
    if (!old) return std::nullopt;
    Artifact a;
    a.id = id;
    a.parent_id = in.parent_id ? in.parent_id : old->parent_id;
    if (in.parent_id) check_no_cycle(w, id, *in.parent_id);
    a.level = a.parent_id ? parent_level(w, *a.parent_id) + 1 : 0;
    a.data_json = in.data_json ? *in.data_json : std::move(old->data);
    a.tags_json = in.tags_json ? *in.tags_json : std::move(old->tags);
    a.created_at = old->created_at;
    a.updated_at = now_us();
    update_row(w, a);
    if (old->parent_id != a.parent_id || old->level != a.level) cascade(w, id, a.level);
    return a;
}

}  // namespace

// ---- writes ----

Artifact save_artifact(Connection &w, const ArtifactInput &in) {
    const std::string id = in.id ? *in.id : new_ulid_string();
    Artifact saved;
    in_savepoint(w, [&] { saved = save(w, id, *in.data_json, in.parent_id, in.tags_json, now_us()); });
    return saved;
}

std::optional<Artifact> update_artifact(Connection &w, const std::string &id, const ArtifactInput &in) {
    std::optional<Artifact> updated;
    in_savepoint(w, [&] { updated = update(w, id, in); });
    return updated;
}

bool delete_artifact(Connection &w, const std::string &id) {
    // ON DELETE SET NULL orphans the children; their level stays.
    return Stmt(w, kDeleteArtifact).bind(1, std::string_view(id)).run() > 0;
}

// The usual one (fresh id, no parent) is one INSERT, atomic by itself; one
// with a parent goes through the general save, in a savepoint so a failure
// leaves nothing.
std::string insert_result_artifact(Connection &w, Artifact &a) {
    if (a.id.empty()) a.id = new_ulid_string();
    if (!a.created_at) a.created_at = now_us();
    if (a.parent_id) {
        in_savepoint(w, [&] { save(w, a.id, a.data_json, a.parent_id, a.tags_json, a.created_at); });
    } else {
        a.level = 0;  // no parent
        insert_artifact_row(w, a);
    }
    return a.id;
}

void insert_artifact_row(Connection &w, const Artifact &a) {
    Stmt s(w, kInsertArtifact);
    s.bind(1, std::string_view(a.id)).bind(2, a.parent_id).bind(3, static_cast<int64_t>(a.level));
    s.bind(4, std::string_view(a.data_json)).bind(5, std::string_view(a.tags_json)).bind(6, a.created_at).run();
}

// ---- reads ----

std::optional<Artifact> get_artifact(Connection &r, const std::string &id) {
    Stmt s(r, kGetArtifact);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    return read_artifact(s);
}

std::vector<Artifact> list_artifacts(Connection &r, size_t limit, size_t offset) {
    std::vector<Artifact> out;
    Stmt s(r, kListArtifacts);
    s.bind_count(1, limit).bind_count(2, offset);
    while (s.step()) out.push_back(read_artifact(s));
    return out;
}

size_t count_artifacts(Connection &r) {
    Stmt s(r, kCountArtifacts);
    return s.step() ? static_cast<size_t>(s.i64(0)) : 0;
}

std::vector<Artifact> artifact_subtree(Connection &r, const std::string &root_id) {
    std::vector<Artifact> out;
    Stmt s(r, kSubtree);
    s.bind(1, std::string_view(root_id));
    while (s.step()) out.push_back(read_artifact(s));
    return out;
}

}  // namespace taskhost::store::sqlite
