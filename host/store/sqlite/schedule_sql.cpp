#include "store/sqlite/schedule_sql.hpp"

namespace taskhost::store::sqlite {

namespace {

#define SCHEDULE_COLS                                                                                                  \
    "id, task_name, params, cron, time_zone, enabled, from_plugin, created_at, updated_at, next_run_at, last_run_at, " \
    "last_job_id, last_error, runs"

// A taken id, or a second plugin schedule for a task, inserts nothing.
constexpr char kInsert[] = "INSERT INTO schedules (" SCHEDULE_COLS
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
                           "ON CONFLICT DO NOTHING";
constexpr char kUpdate[] =
    "UPDATE schedules SET task_name = ?2, params = ?3, cron = ?4, time_zone = ?5, enabled = ?6, updated_at = ?7, "
    "next_run_at = CASE WHEN ?9 <> 0 THEN ?8 ELSE next_run_at END WHERE id = ?1";
constexpr char kDelete[] = "DELETE FROM schedules WHERE id = ?1";
// ?5: whether it made a new job. ?6 NULL: out of turn, next_run_at stays.
constexpr char kRecordRun[] =
    "UPDATE schedules SET last_run_at = ?2, last_job_id = ?3, last_error = ?4, runs = runs + ?5, "
    "next_run_at = CASE WHEN ?6 IS NULL THEN next_run_at ELSE ?7 END "
    "WHERE id = ?1 AND (?6 IS NULL OR next_run_at = ?6)";
constexpr char kGet[] = "SELECT " SCHEDULE_COLS " FROM schedules WHERE id = ?1";
// Ids are ULIDs: id order is creation order.
constexpr char kList[] = "SELECT " SCHEDULE_COLS " FROM schedules ORDER BY id";

#undef SCHEDULE_COLS

model::Schedule read_schedule(const Stmt &s) {
    model::Schedule out;
    out.id = s.text(0);
    out.task_name = s.text(1);
    out.params_json = s.text(2);
    out.cron = s.text(3);
    out.time_zone = s.text(4);
    out.enabled = s.i64(5) != 0;
    out.from_plugin = s.i64(6) != 0;
    out.created_at = s.i64(7);
    out.updated_at = s.i64(8);
    out.next_run_at = s.i64(9);  // NULL reads as 0
    out.last_run_at = s.i64(10);
    out.last_job_id = s.text(11);
    out.last_error = s.text(12);
    out.runs = s.i64(13);
    return out;
}

Stmt &bind_text_or_null(Stmt &s, int i, const std::string &text) {
    return text.empty() ? s.bind_null(i) : s.bind(i, std::string_view(text));
}

}  // namespace

bool insert_schedule(Connection &w, const model::Schedule &v) {
    Stmt s(w, kInsert);
    s.bind(1, std::string_view(v.id)).bind(2, std::string_view(v.task_name)).bind(3, std::string_view(v.params_json));
    s.bind(4, std::string_view(v.cron)).bind(5, std::string_view(v.time_zone));
    s.bind(6, int64_t{v.enabled}).bind(7, int64_t{v.from_plugin});
    s.bind(8, v.created_at).bind(9, v.updated_at).bind_time(10, v.next_run_at).bind_time(11, v.last_run_at);
    bind_text_or_null(s, 12, v.last_job_id);
    bind_text_or_null(s, 13, v.last_error);
    s.bind(14, v.runs);
    return s.run() > 0;
}

bool update_schedule(Connection &w, const model::Schedule &v, bool set_next_run) {
    Stmt s(w, kUpdate);
    s.bind(1, std::string_view(v.id)).bind(2, std::string_view(v.task_name)).bind(3, std::string_view(v.params_json));
    s.bind(4, std::string_view(v.cron)).bind(5, std::string_view(v.time_zone)).bind(6, int64_t{v.enabled});
    s.bind(7, v.updated_at).bind_time(8, v.next_run_at).bind(9, int64_t{set_next_run ? 1 : 0});
    return s.run() > 0;
}

bool delete_schedule(Connection &w, const std::string &id) {
    return Stmt(w, kDelete).bind(1, std::string_view(id)).run() > 0;
}

bool record_schedule_run(Connection &w, const std::string &id, const model::ScheduleRun &run,
                         std::optional<int64_t> fired, int64_t next_run_at) {
    Stmt s(w, kRecordRun);
    s.bind(1, std::string_view(id)).bind(2, run.at);
    bind_text_or_null(s, 3, run.job_id);
    bind_text_or_null(s, 4, run.error);
    s.bind(5, int64_t{run.made ? 1 : 0});
    if (fired) s.bind(6, *fired);
    else s.bind_null(6);
    s.bind_time(7, next_run_at);
    return s.run() > 0;
}

bool write_schedule(Connection &w, const WriteSchedule &op) {
    switch (op.kind) {
        case WriteSchedule::Kind::insert: return insert_schedule(w, *op.schedule);
        case WriteSchedule::Kind::update: return update_schedule(w, *op.schedule, op.set_next_run);
        case WriteSchedule::Kind::remove: return delete_schedule(w, *op.id);
        case WriteSchedule::Kind::record_run: return record_schedule_run(w, *op.id, *op.run, op.fired, op.next_run_at);
    }
    return false;
}

std::optional<model::Schedule> get_schedule(Connection &r, const std::string &id) {
    Stmt s(r, kGet);
    s.bind(1, std::string_view(id));
    if (!s.step()) return std::nullopt;
    return read_schedule(s);
}

std::vector<model::Schedule> list_schedules(Connection &r) {
    std::vector<model::Schedule> out;
    Stmt s(r, kList);
    while (s.step()) out.push_back(read_schedule(s));
    return out;
}

}  // namespace taskhost::store::sqlite
