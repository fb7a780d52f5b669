#include "store/postgres/schedule_sql.hpp"

namespace taskhost::store::postgres {

namespace {

#define SCHEDULE_COLS                                                                                                  \
    "id, task_name, params, cron, time_zone, enabled, from_plugin, created_at, updated_at, next_run_at, last_run_at, " \
    "last_job_id, last_error, runs"

// A taken id, or a second plugin schedule for a task (hosts loading the
// same plugin race here), inserts nothing instead of failing the batch.
constexpr Statement kInsert{"INSERT INTO schedules (" SCHEDULE_COLS
                            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
                            "ON CONFLICT DO NOTHING"};
constexpr Statement kUpdate{
    "UPDATE schedules SET task_name = $2, params = $3, cron = $4, time_zone = $5, enabled = $6, updated_at = $7, "
    "next_run_at = CASE WHEN $9::boolean THEN $8::bigint ELSE next_run_at END WHERE id = $1"};
constexpr Statement kDelete{"DELETE FROM schedules WHERE id = $1"};
// $5: whether it made a new job. $6 NULL: out of turn, next_run_at stays.
// Hosts that fire the same run race on the row: the first one's update
// moves next_run_at, and the others' then match nothing.
constexpr Statement kRecordRun{
    "UPDATE schedules SET last_run_at = $2, last_job_id = $3, last_error = $4, runs = runs + $5, "
    "next_run_at = CASE WHEN $6::bigint IS NULL THEN next_run_at ELSE $7::bigint END "
    "WHERE id = $1 AND ($6::bigint IS NULL OR next_run_at = $6::bigint)"};
constexpr Statement kGet{"SELECT " SCHEDULE_COLS " FROM schedules WHERE id = $1"};
// Ids are ULIDs: id order is creation order.
constexpr Statement kList{"SELECT " SCHEDULE_COLS " FROM schedules ORDER BY id"};

#undef SCHEDULE_COLS

model::Schedule read_schedule(const Rows &r, int i) {
    model::Schedule out;
    out.id = r.text(i, 0);
    out.task_name = r.text(i, 1);
    out.params_json = r.text(i, 2);
    out.cron = r.text(i, 3);
    out.time_zone = r.text(i, 4);
    out.enabled = r.text(i, 5) == "t";
    out.from_plugin = r.text(i, 6) == "t";
    out.created_at = r.i64(i, 7);
    out.updated_at = r.i64(i, 8);
    out.next_run_at = r.i64(i, 9);  // NULL reads as 0
    out.last_run_at = r.i64(i, 10);
    out.last_job_id = r.text(i, 11);  // NULL reads as ""
    out.last_error = r.text(i, 12);
    out.runs = r.i64(i, 13);
    return out;
}

std::optional<std::string> text_or_null(const std::string &text) {
    return text.empty() ? std::nullopt : std::optional<std::string>(text);
}

std::string_view boolean(bool b) { return b ? "true" : "false"; }

bool insert_schedule(Connection &w, const model::Schedule &v) {
    Params p;
    p.add(std::string_view(v.id)).add(std::string_view(v.task_name)).add(std::string_view(v.params_json));
    p.add(std::string_view(v.cron)).add(std::string_view(v.time_zone));
    p.add(boolean(v.enabled)).add(boolean(v.from_plugin));
    p.add(v.created_at).add(v.updated_at).add_time(v.next_run_at).add_time(v.last_run_at);
    p.add(text_or_null(v.last_job_id)).add(text_or_null(v.last_error)).add(v.runs);
    return w.run(kInsert, p).affected() > 0;
}

bool update_schedule(Connection &w, const model::Schedule &v, bool set_next_run) {
    Params p;
    p.add(std::string_view(v.id)).add(std::string_view(v.task_name)).add(std::string_view(v.params_json));
    p.add(std::string_view(v.cron)).add(std::string_view(v.time_zone)).add(boolean(v.enabled));
    p.add(v.updated_at).add_time(v.next_run_at).add(boolean(set_next_run));
    return w.run(kUpdate, p).affected() > 0;
}

bool record_schedule_run(Connection &w, const std::string &id, const model::ScheduleRun &run,
                         std::optional<int64_t> fired, int64_t next_run_at) {
    Params p;
    p.add(std::string_view(id)).add(run.at).add(text_or_null(run.job_id)).add(text_or_null(run.error));
    p.add(int64_t{run.made ? 1 : 0});
    if (fired) p.add(*fired);
    else p.add_null();
    p.add_time(next_run_at);
    return w.run(kRecordRun, p).affected() > 0;
}

}  // namespace

bool write_schedule(Connection &w, const WriteSchedule &op) {
    switch (op.kind) {
        case WriteSchedule::Kind::insert: return insert_schedule(w, *op.schedule);
        case WriteSchedule::Kind::update: return update_schedule(w, *op.schedule, op.set_next_run);
        case WriteSchedule::Kind::remove: {
            Params p;
            p.add(std::string_view(*op.id));
            return w.run(kDelete, p).affected() > 0;
        }
        case WriteSchedule::Kind::record_run: return record_schedule_run(w, *op.id, *op.run, op.fired, op.next_run_at);
    }
    return false;
}

std::optional<model::Schedule> get_schedule(Connection &r, const std::string &id) {
    Params p;
    p.add(std::string_view(id));
    Rows rows = r.run(kGet, p);
    if (!rows.size()) return std::nullopt;
    return read_schedule(rows, 0);
}

std::vector<model::Schedule> list_schedules(Connection &r) {
    Params none;
    Rows rows = r.run(kList, none);
    std::vector<model::Schedule> out;
    for (int i = 0; i < rows.size(); ++i) out.push_back(read_schedule(rows, i));
    return out;
}

}  // namespace taskhost::store::postgres
