#include "store/postgres/plugin_fault_sql.hpp"

#include "store/postgres/job_sql.hpp"

namespace taskhost::store::postgres {

namespace {

#define FAULT_COLS \
    "hash, file, name, version, tasks, crashes, load_failures, hangs, last_reason, last_at, quarantined_at"

// A first fault inserts the row; later ones add to its counts, and the
// quarantine is set in the same statement once a count reaches its
// threshold. Task names are kept from the last report that knew them.
constexpr char kCountFault[] =
    "INSERT INTO plugin_faults AS f (hash, file, name, version, tasks, crashes, load_failures, hangs, "
    "last_reason, last_at, quarantined_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
    "CASE WHEN $6::bigint >= $11::bigint OR $7::bigint >= $12::bigint OR $8::bigint >= $13::bigint "
    "THEN $10::bigint END) "
    "ON CONFLICT (hash) DO UPDATE SET file = excluded.file, name = excluded.name, version = excluded.version, "
    "tasks = CASE WHEN excluded.tasks <> '[]' THEN excluded.tasks ELSE f.tasks END, "
    "crashes = f.crashes + excluded.crashes, load_failures = f.load_failures + excluded.load_failures, "
    "hangs = f.hangs + excluded.hangs, last_reason = excluded.last_reason, last_at = excluded.last_at, "
    "quarantined_at = coalesce(f.quarantined_at, CASE WHEN f.crashes + excluded.crashes >= $11 "
    "OR f.load_failures + excluded.load_failures >= $12 OR f.hangs + excluded.hangs >= $13 THEN $10 END) "
    "RETURNING " FAULT_COLS;
constexpr char kQuarantined[] =
    "SELECT " FAULT_COLS " FROM plugin_faults WHERE quarantined_at IS NOT NULL ORDER BY file, quarantined_at";

#undef FAULT_COLS

model::PluginFaults read_faults(const Rows &r, int i) {
    model::PluginFaults f;
    f.hash = r.text(i, 0);
    f.file = r.text(i, 1);
    f.name = r.text(i, 2);
    f.version = r.text(i, 3);
    f.tasks_json = r.text(i, 4);
    f.crashes = r.i64(i, 5);
    f.load_failures = r.i64(i, 6);
    f.hangs = r.i64(i, 7);
    f.last_reason = r.text(i, 8);
    f.last_at = r.i64(i, 9);
    f.quarantined_at = r.i64(i, 10);  // NULL reads as 0
    return f;
}

}  // namespace

model::PluginFaults record_plugin_fault(Connection &w, const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                        const std::string &reason, const model::QuarantineThresholds &thresholds,
                                        int64_t now) {
    Params p;
    p.add(std::string_view(plugin.hash)).add(std::string_view(plugin.file));
    p.add(std::string_view(plugin.name)).add(std::string_view(plugin.version));
    p.add(std::string_view(plugin.tasks_json));
    p.add(int64_t{kind == model::PluginFaultKind::crash});
    p.add(int64_t{kind == model::PluginFaultKind::load_failure});
    p.add(int64_t{kind == model::PluginFaultKind::hang});
    p.add(std::string_view(reason)).add(now);
    p.add(int64_t{thresholds.crashes}).add(int64_t{thresholds.load_failures}).add(int64_t{thresholds.hangs});
    model::PluginFaults after;
    in_savepoint(w, [&] {
        Rows r = w.run(kCountFault, p);
        if (r.size()) after = read_faults(r, 0);
    });
    return after;
}

std::vector<model::PluginFaults> quarantined_plugins(Connection &r) {
    Rows rows = r.run(kQuarantined);
    std::vector<model::PluginFaults> out;
    for (int i = 0; i < rows.size(); ++i) out.push_back(read_faults(rows, i));
    return out;
}

}  // namespace taskhost::store::postgres
