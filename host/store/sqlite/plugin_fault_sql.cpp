#include "store/sqlite/plugin_fault_sql.hpp"

namespace taskhost::store::sqlite {

namespace {

#define FAULT_COLS \
    "hash, file, name, version, tasks, crashes, load_failures, hangs, last_reason, last_at, quarantined_at"

// A first fault inserts the row; later ones add to its counts. Task names
// are kept from the last report that knew them.
constexpr char kCountFault[] =
    "INSERT INTO plugin_faults (hash, file, name, version, tasks, crashes, load_failures, hangs, last_reason, "
    "last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
    "ON CONFLICT (hash) DO UPDATE SET file = excluded.file, name = excluded.name, version = excluded.version, "
    "tasks = CASE WHEN excluded.tasks <> '[]' THEN excluded.tasks ELSE tasks END, "
    "crashes = crashes + excluded.crashes, load_failures = load_failures + excluded.load_failures, "
    "hangs = hangs + excluded.hangs, last_reason = excluded.last_reason, last_at = excluded.last_at";
constexpr char kQuarantine[] =
    "UPDATE plugin_faults SET quarantined_at = ?2 WHERE hash = ?1 AND quarantined_at IS NULL AND "
    "(crashes >= ?3 OR load_failures >= ?4 OR hangs >= ?5)";
constexpr char kGetFaults[] = "SELECT " FAULT_COLS " FROM plugin_faults WHERE hash = ?1";
constexpr char kQuarantined[] =
    "SELECT " FAULT_COLS " FROM plugin_faults WHERE quarantined_at IS NOT NULL ORDER BY file, quarantined_at";

#undef FAULT_COLS

model::PluginFaults read_faults(const Stmt &s) {
    model::PluginFaults f;
    f.hash = s.text(0);
    f.file = s.text(1);
    f.name = s.text(2);
    f.version = s.text(3);
    f.tasks_json = s.text(4);
    f.crashes = s.i64(5);
    f.load_failures = s.i64(6);
    f.hangs = s.i64(7);
    f.last_reason = s.text(8);
    f.last_at = s.i64(9);
    f.quarantined_at = s.i64(10);  // NULL reads as 0
    return f;
}

}  // namespace

model::PluginFaults record_plugin_fault(Connection &w, const model::PluginFaults &plugin, model::PluginFaultKind kind,
                                        const std::string &reason, const model::QuarantineThresholds &thresholds,
                                        int64_t now) {
    model::PluginFaults after;
    in_savepoint(w, [&] {
        Stmt count(w, kCountFault);
        count.bind(1, std::string_view(plugin.hash)).bind(2, std::string_view(plugin.file));
        count.bind(3, std::string_view(plugin.name)).bind(4, std::string_view(plugin.version));
        count.bind(5, std::string_view(plugin.tasks_json));
        count.bind(6, int64_t{kind == model::PluginFaultKind::crash});
        count.bind(7, int64_t{kind == model::PluginFaultKind::load_failure});
        count.bind(8, int64_t{kind == model::PluginFaultKind::hang});
        count.bind(9, std::string_view(reason)).bind(10, now).run();
        Stmt quarantine(w, kQuarantine);
        quarantine.bind(1, std::string_view(plugin.hash)).bind(2, now);
        quarantine.bind(3, int64_t{thresholds.crashes}).bind(4, int64_t{thresholds.load_failures});
        quarantine.bind(5, int64_t{thresholds.hangs}).run();
        Stmt get(w, kGetFaults);
        get.bind(1, std::string_view(plugin.hash));
        if (get.step()) after = read_faults(get);
    });
    return after;
}

std::vector<model::PluginFaults> quarantined_plugins(Connection &r) {
    std::vector<model::PluginFaults> out;
    Stmt s(r, kQuarantined);
    while (s.step()) out.push_back(read_faults(s));
    return out;
}

}  // namespace taskhost::store::sqlite
