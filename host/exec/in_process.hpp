// The in-process executor: a fixed pool of worker threads fed by a bounded
// queue, and the run-before-answer path (a submitter takes a free worker
// slot and runs a quick job on its own thread, saving two hand-offs). Plugin
// code runs in the host's address space: fastest, and trusted.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "exec/executor.hpp"
#include "exec/host_api.hpp"
#include "store/store.hpp"

namespace taskhost::exec {

class InProcessExecutor : public Executor {
public:
    struct Options {
        size_t workers = 4;                   // --max-concurrency
        size_t queue_capacity = 10000;        // --queue-size
        size_t max_result_bytes = 16u << 20;  // --max-result-bytes: a task's result, an artifact it saves
    };

    InProcessExecutor(store::Store &store, Options options);
    ~InProcessExecutor() override;  // stop()

    Result<Admission> admit(bool may_run_here) override;
    void dispatch(Admission admission, std::shared_ptr<Work> work, int64_t rank) override;
    void requeue(std::shared_ptr<Work> work, int64_t rank) override;

    Result<void> validate(const Target &target, std::string_view params_json) override;
    model::TaskOutcome invoke(const Target &target, const std::string &job_id, std::string_view params_json,
                              JobContext &job, ParamsCheck check = ParamsCheck::done) override;
    Result<void> run_init(const th_plugin_desc &desc, const std::string &file, const std::string &hash) override;

    WriteOff write_off(const Work &work) override;
    void start() override;
    void stop() override;
    Load load() const override;

protected:
    // The thread running one piece of work (on its stack while it runs).
    struct Runner {
        std::thread::id thread;
        bool worker = false;       // a worker thread, not a submitter's
        bool written_off = false;  // (mu_)
        std::string job_id;        // set by a subclass's invoke() that needs it (mu_)
    };
    // The runner of the work running on this thread, if any.
    static thread_local Runner *current_runner_;
    HostApi &host_api() { return host_api_; }
    // Stops `runner`'s work by force, if the subclass can (mu_ not held).
    virtual bool force_stop(const std::string &job_id) {
        (void)job_id;
        return false;
    }
    mutable std::mutex mu_;  // guards the queue, counts and runners below

private:
    void release(Admission::Where where) override;
    void release_slot();
    void worker_loop();
    void enqueue(std::shared_ptr<Work> work, int64_t rank);  // mu_ held
    // Runs `work` as `runner`; true if it was written off meanwhile.
    bool run_work(Work &work, Runner &runner);

    HostApi host_api_;
    const Options options_;

    std::condition_variable work_cv_;  // wakes workers: work queued, a slot freed, or stopping
    // By (rank, order queued): the first runs next.
    std::map<std::pair<int64_t, uint64_t>, std::shared_ptr<Work>> queue_;
    uint64_t queued_count_ = 0;
    size_t reserved_ = 0;  // queue places admitted and not yet dispatched
    size_t busy_ = 0;      // slots in use, by workers or submitters (at most options_.workers)
    size_t stuck_ = 0;     // written-off runners whose code has not returned
    bool stopping_ = false;
    std::vector<std::thread> workers_;                    // joined at stop()
protected:
    std::unordered_map<const Work *, Runner *> runners_;  // work running now (mu_)
};

}  // namespace taskhost::exec
