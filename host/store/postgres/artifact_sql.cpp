#include "store/postgres/artifact_sql.hpp"

#include <utility>

#include "store/postgres/job_sql.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

namespace taskhost::store::postgres {

using model::Artifact;
using model::ArtifactInput;

namespace {

#define ARTIFACT_COLS "id, parent_id, level, data::text, tags::text, created_at, updated_at"

// FOR KEY SHARE: the parent cannot be deleted (by another host) before
// this transaction commits, so the insert that follows cannot break the
// foreign key.
constexpr char kArtifactLevel[] = "SELECT level FROM artifacts WHERE id = $1 FOR KEY SHARE";
// FOR UPDATE: two hosts updating one artifact take turns.
constexpr char kArtifactForWrite[] =
    "SELECT parent_id, level, data::text, tags::text, created_at FROM artifacts WHERE id = $1 FOR UPDATE";
constexpr Statement kInsertArtifact{
    "INSERT INTO artifacts (id, parent_id, level, data, tags, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING"};
constexpr char kUpdateArtifact[] =
    "UPDATE artifacts SET parent_id = $2, level = $3, data = $4, tags = $5, updated_at = $6 WHERE id = $1";
// Is $2 an ancestor of $1 (parent, grandparent, …)? UNION stops on any loop.
constexpr char kIsAncestor[] =
    "WITH RECURSIVE anc(id) AS ("
    "  SELECT parent_id FROM artifacts WHERE id = $1"
    "  UNION SELECT a.parent_id FROM artifacts a JOIN anc ON a.id = anc.id"
    ") SELECT 1 FROM anc WHERE id = $2 LIMIT 1";
// Every descendant of $1 gets $2 + its depth below $1, in one statement.
constexpr char kCascadeLevels[] =
    "WITH RECURSIVE sub(id, depth) AS ("
    "  SELECT id, 1 FROM artifacts WHERE parent_id = $1"
    "  UNION SELECT a.id, sub.depth + 1 FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    "  WHERE sub.depth < 1000000"
    ") UPDATE artifacts SET level = $2 + sub.depth FROM sub WHERE artifacts.id = sub.id";
// Re-parenting takes turns across the fleet: a cycle check reads
// ancestors that another host may be re-parenting at the same time, and two
// checks that each pass could together make a cycle. Rare, so one lock
// (an advisory key of its own) for all of it costs nothing that matters.
constexpr char kReparentLock[] = "SELECT pg_advisory_xact_lock(2296056052686)";
constexpr char kDeleteArtifact[] = "DELETE FROM artifacts WHERE id = $1";
constexpr Statement kGetArtifact{"SELECT " ARTIFACT_COLS " FROM artifacts WHERE id = $1"};
constexpr char kListArtifacts[] = "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY seq LIMIT $1 OFFSET $2";
constexpr char kCountArtifacts[] = "SELECT count(*) FROM artifacts";
constexpr char kSubtree[] =
    "WITH RECURSIVE sub(id) AS ("
    "  SELECT id FROM artifacts WHERE id = $1"
    "  UNION SELECT a.id FROM artifacts a JOIN sub ON a.parent_id = sub.id"
    ") SELECT a.id, a.parent_id, a.level, a.data::text, a.tags::text, a.created_at, a.updated_at "
    "FROM artifacts a JOIN sub ON a.id = sub.id ORDER BY a.id <> $1, a.seq";

#undef ARTIFACT_COLS

[[noreturn]] void invalid(const std::string &msg) { throw StoreError(StoreError::Kind::invalid, msg); }

Artifact read_artifact(const Rows &r, int i) {
    Artifact a;
    a.id = r.text(i, 0);
    a.parent_id = r.opt_text(i, 1);
    a.level = static_cast<int>(r.i64(i, 2));
    a.data_json = r.text(i, 3);
    a.tags_json = r.text(i, 4);
    a.created_at = r.i64(i, 5);
    a.updated_at = r.i64(i, 6);
    return a;
}

std::vector<Artifact> read_artifacts(const Rows &r) {
    std::vector<Artifact> out;
    out.reserve(static_cast<size_t>(r.size()));
    for (int i = 0; i < r.size(); ++i) out.push_back(read_artifact(r, i));
    return out;
}


int parent_level(Connection &w, const std::string &parent_id) {
    Params p;
    p.add(std::string_view(parent_id));
    Rows r = w.run(kArtifactLevel, p);
    if (!r.size()) invalid("parent artifact " + parent_id + " does not exist");
    return static_cast<int>(r.i64(0, 0));
}

void check_no_cycle(Connection &w, const std::string &id, const std::string &parent_id) {
    if (parent_id == id) invalid("artifact " + id + " cannot be its own parent");
    w.run(kReparentLock);
    Params p;
    p.add(std::string_view(parent_id)).add(std::string_view(id));
    if (w.run(kIsAncestor, p).size())
        invalid("artifact " + parent_id + " cannot be the parent of " + id + ": it is one of its descendants");
}

void cascade(Connection &w, const std::string &id, int level) {
    Params p;
    p.add(std::string_view(id)).add(static_cast<int64_t>(level));
    w.run(kCascadeLevels, p);
}

// jsonb refuses the escape \u0000 (its text type cannot hold NUL): refused
// here, before a statement fails and aborts the batch's transaction.
void check_storable(const std::string &json_text) {
    for (size_t at = json_text.find("u0000"); at != std::string::npos; at = json_text.find("u0000", at + 1)) {
        size_t backslashes = 0;
        while (backslashes < at && json_text[at - 1 - backslashes] == '\\') ++backslashes;
        if (backslashes % 2 == 1)
            invalid("PostgreSQL cannot store the character U+0000 (\\u0000) in JSON data");
    }
}

void check_storable(const Artifact &a) {
    check_storable(a.data_json);
    check_storable(a.tags_json);
}

void insert_row(Connection &w, const Artifact &a) {
    check_storable(a);
    Params p;
    p.add(std::string_view(a.id)).add(a.parent_id).add(static_cast<int64_t>(a.level));
    p.add(std::string_view(a.data_json)).add(std::string_view(a.tags_json)).add(a.created_at);
    if (w.run(kInsertArtifact, p).affected() == 0)
        invalid("UNIQUE constraint failed: artifacts.id (" + a.id + ")");
}

void update_row(Connection &w, const Artifact &a) {
    check_storable(a);
    Params p;
    p.add(std::string_view(a.id)).add(a.parent_id).add(static_cast<int64_t>(a.level));
    p.add(std::string_view(a.data_json)).add(std::string_view(a.tags_json)).add(a.updated_at);
    w.run(kUpdateArtifact, p);
}

struct Existing {
    std::optional<std::string> parent_id;
    int level = 0;
    std::string data, tags;
    int64_t created_at = 0;
};
std::optional<Existing> load_for_write(Connection &w, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    Rows r = w.run(kArtifactForWrite, p);
    if (!r.size()) return std::nullopt;
    return Existing{r.opt_text(0, 0), static_cast<int>(r.i64(0, 1)), r.text(0, 2), r.text(0, 3), r.i64(0, 4)};
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
    if (auto old = load_for_write(w, id)) {
        if (parent_id) check_no_cycle(w, id, *parent_id);
        a.created_at = old->created_at;
        update_row(w, a);
        if (old->parent_id != a.parent_id || old->level != a.level) cascade(w, id, a.level);
    } else {
        insert_row(w, a);
    }
    return a;
}

std::optional<Artifact> update(Connection &w, const std::string &id, const ArtifactInput &in) {
    auto old = load_for_write(w, id);
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
    Params p;
    p.add(std::string_view(id));
    return w.run(kDeleteArtifact, p).affected() > 0;
}

std::string insert_result_artifact(Connection &w, Artifact &a) {
    if (a.id.empty()) a.id = new_ulid_string();
    if (!a.created_at) a.created_at = now_us();
    if (a.parent_id) {
        save(w, a.id, a.data_json, a.parent_id, a.tags_json, a.created_at);
    } else {
        a.level = 0;
        insert_row(w, a);
    }
    return a.id;
}

// ---- reads ----

std::optional<Artifact> get_artifact(Connection &r, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    Rows rows = r.run(kGetArtifact, p);
    if (!rows.size()) return std::nullopt;
    return read_artifact(rows, 0);
}

std::vector<Artifact> list_artifacts(Connection &r, size_t limit, size_t offset) {
    Params p;
    p.add_count(limit).add_count(offset);
    return read_artifacts(r.run(kListArtifacts, p));
}

size_t count_artifacts(Connection &r) {
    Rows rows = r.run(kCountArtifacts);
    return rows.size() ? static_cast<size_t>(rows.i64(0, 0)) : 0;
}

std::vector<Artifact> artifact_subtree(Connection &r, const std::string &root_id) {
    Params p;
    p.add(std::string_view(root_id));
    return read_artifacts(r.run(kSubtree, p));
}

}  // namespace taskhost::store::postgres
