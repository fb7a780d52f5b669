#include "seed.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "store/sqlite/artifact_sql.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/job_sql.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/clock.hpp"
#include "util/ulid.hpp"

namespace bench {

namespace {

using taskhost::new_ulid_string;
namespace store = taskhost::store;

// What the host stores as the result artifact of a `hello` job.
constexpr char kData[] = R"({"task_name":"hello","params":{},"result":{"message":"Hello!"},"error":null})";

// ---- fast path: the store's own row inserts, 10,000 jobs per transaction ----

void seed_rows(const std::string &path, size_t count, std::vector<std::string> &ids,
               const std::function<void(size_t)> &progress) {
    namespace sqlite = store::sqlite;
    sqlite::Connection db(path, false, sqlite::Connection::Role::writer);
    db.exec("PRAGMA synchronous=OFF");
    taskhost::model::Job job;
    job.task_name = "hello";
    job.status = taskhost::model::JobStatus::completed;
    taskhost::model::Artifact artifact;
    artifact.data_json = kData;
    const int64_t base = taskhost::now_us() - static_cast<int64_t>(count) * 10;
    constexpr size_t kPerTransaction = 10'000;
    for (size_t start = 0; start < count; start += kPerTransaction) {
        db.exec("BEGIN IMMEDIATE");
        const size_t end = std::min(count, start + kPerTransaction);
        for (size_t i = start; i < end; ++i) {
            const int64_t t = base + static_cast<int64_t>(i) * 10;
            job.id = new_ulid_string();
            artifact.id = new_ulid_string();
            artifact.created_at = artifact.updated_at = t + 5;
            sqlite::insert_artifact_row(db, artifact);
            job.submitted_at = t;
            job.started_at = t + 2;
            job.finished_at = t + 6;
            job.artifact_id = artifact.id;
            sqlite::insert_job_row(db, job);
            ids[i] = std::move(job.id);
        }
        db.exec("COMMIT");
        if (progress && end % 100'000 == 0) progress(end);
    }
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

// ---- fallback: the store's own API (slower; each insert waits for its
// group commit, so many threads make the groups large) ----------------------

void seed_store(store::Store &st, size_t count, size_t threads, std::vector<std::string> &ids,
                const std::function<void(size_t)> &progress) {
    std::atomic<size_t> next{0}, done{0};
    std::mutex error_mu;
    std::string first_error;
    const int64_t base = taskhost::now_us() - static_cast<int64_t>(count) * 10;
    auto work = [&] {
        taskhost::model::Job job;
        job.task_name = "hello";
        job.params_json = "{}";
        for (;;) {
            const size_t i = next.fetch_add(1);
            if (i >= count) return;
            job.id = new_ulid_string();
            job.status = taskhost::model::JobStatus::pending;
            job.submitted_at = base + static_cast<int64_t>(i) * 10;
            try {
                st.insert_job(job);
                taskhost::model::Artifact artifact;
                artifact.id = new_ulid_string();
                artifact.data_json = kData;
                artifact.created_at = artifact.updated_at = job.submitted_at + 5;
                if (!st.start_job(job.id, job.submitted_at + 2)) throw std::runtime_error("job did not start");
                store::Store::JobEnd end;
                end.finished_at = job.submitted_at + 6;
                end.result_artifact = std::move(artifact);
                st.finish_job(job.id, std::move(end));
            } catch (const std::exception &e) {
                std::lock_guard lock(error_mu);
                if (first_error.empty()) first_error = e.what();
                next.store(count);
                return;
            }
            ids[i] = job.id;
            size_t d = done.fetch_add(1) + 1;
            if (d % 100'000 == 0 && progress) progress(d);
        }
    };
    std::vector<std::thread> pool;
    for (size_t t = 0; t < std::max<size_t>(1, threads); ++t) pool.emplace_back(work);
    for (auto &t : pool) t.join();
    st.flush();
    if (!first_error.empty()) throw std::runtime_error(first_error);
}

// Reads a seeded job back through the host's store: the record must be what
// a finished `hello` job looks like.
std::string verify(store::Store &st, const std::vector<std::string> &ids, size_t count) {
    if (st.count_jobs(std::nullopt) < count) return "the database holds fewer jobs than were written";
    for (size_t i : {size_t{0}, count / 2, count - 1}) {
        auto job = st.get_job(ids[i]);
        if (!job) return "seeded job " + ids[i] + " cannot be read back";
        if (job->status != taskhost::model::JobStatus::completed || job->task_name != "hello" || !job->artifact_id ||
            job->finished_at == 0)
            return "seeded job " + ids[i] + " does not read back as a completed hello job";
        auto artifact = st.get_artifact(*job->artifact_id);
        if (!artifact || artifact->data_json != kData) return "the artifact of job " + ids[i] + " does not read back";
    }
    return {};
}

}  // namespace

SeedResult seed_completed_jobs(const std::string &db_path, size_t count, size_t threads, bool use_store,
                               const std::function<void(size_t)> &progress) {
    SeedResult result;
    result.job_ids.resize(count);
    const auto t0 = std::chrono::steady_clock::now();
    try {
        store::SqliteStore::Options options;
        options.path = db_path;
        options.max_batch = 8192;
        options.read_connections = 1;
        // Opening the store creates and migrates the schema exactly as the host does.
        { store::SqliteStore st(options); }
        bool fast = !use_store;
        if (fast) {
            try {
                seed_rows(db_path, count, result.job_ids, progress);
            } catch (const std::exception &e) {
                // Say why, and seed through the store's API instead.
                fast = false;
                result.note = std::string("bulk row inserts failed (") + e.what() + "); seeded through the store API";
            }
        }
        store::SqliteStore st(options);
        if (!fast) {
            if (st.count_jobs(std::nullopt) != 0)
                throw std::runtime_error("bulk row inserts failed half way: " + result.note);
            seed_store(st, count, threads, result.job_ids, progress);
        }
        if (count > 0) result.error = verify(st, result.job_ids, count);
        result.method = fast ? "store row inserts, 10k jobs per transaction" : "store API";
    } catch (const std::exception &e) {
        result.error = e.what();
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

}  // namespace bench
