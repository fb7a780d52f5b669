// The channel between the host and a worker process: a stream socketpair
// carrying frames, each a 4-byte length (of what follows the type), a
// 1-byte type and its fields. Both ends are this same binary, so integers
// travel in the machine's byte order; text (JSON included) travels as it
// is, length-prefixed, never re-encoded.
//
// The worker is started as `taskhost __worker ...` (exec, not fork of the
// host's threads) with the plugin's sealed image at worker_image_fd, its
// end of the channel at worker_channel_fd and a shared control page at
// worker_control_fd. It loads the plugin, runs its init() and says Ready
// (or InitFailed). Then, one job at a time: the host sends Invoke; the
// worker runs the task, and every host service the task calls becomes a
// frame: a Call the host answers with a Reply, or a Notice it does not
// answer (result, error, progress, log); Done ends the job. Cancellation is
// a word in the control page, read by the task's is_cancelled() without a
// system call. The host closing its end asks the worker to shut down.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace taskhost::exec::worker {

inline constexpr const char *mode_argument = "__worker";
inline constexpr int worker_image_fd = 3;
inline constexpr int worker_channel_fd = 4;
inline constexpr int worker_control_fd = 5;
// How the worker's loader names the plugin image (its frames say so).
inline constexpr const char *worker_image_path = "/proc/self/fd/3";

enum class FrameType : uint8_t {
    // host -> worker
    invoke = 1,    // u64 seq, u8 check_params, str task, str job_id, str params
    validate = 2,  // str task, str params
    reply = 3,     // u32 status, str out, str err
    // worker -> host
    ready = 10,        // (nothing)
    init_failed = 11,  // str reason
    call = 12,         // u8 Service, then its fields (below)
    notice = 13,       // u8 Notice, then its fields (below)
    done = 14,         // u32 status (th_status of invoke), u64 run_us (the task's own time)
    validated = 15,    // u32 status, str message (also instead of Done: an Invoke's params refused)
};

// Services that answer (Call): fields after the service byte.
enum class Service : uint8_t {
    artifact_save = 1,  // str data_json, str parent_id           -> out: the new id
    artifact_get = 2,   // str id                                 -> out: the artifact JSON
    db_query = 3,       // str sql, u8 has_params, str params     -> out: rows JSON
    session_begin = 4,  //                                        -> (status)
    session_end = 5,    // u8 commit                              -> (status)
    schedule = 6,       // str task, str params                   -> out: the job id
    job_get = 7,        // str job_id                             -> out: the job JSON
};

// Reports that do not (Notice).
enum class Notice : uint8_t {
    set_result = 1,        // str json
    set_error = 2,         // str type, str message, str traceback
    set_error_frames = 3,  // str type, str message, u32 flags, u32 n, n x (str module, str build_id, u64 offset)
    progress = 4,          // f64 fraction, u8 has_message, str message
    log = 5,               // u32 level, str message
};

// The page both sides map: the host writes, the worker reads.
struct ControlPage {
    // The seq of the Invoke the host wants stopped (0: none).
    std::atomic<uint64_t> cancel_seq{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the control page is shared between processes");

inline constexpr size_t frame_header_size = 5;

// Builds one frame.
class FrameWriter {
public:
    explicit FrameWriter(FrameType type) {
        bytes_.resize(frame_header_size);
        bytes_[4] = static_cast<char>(type);
    }
    FrameWriter &u8(uint8_t v) { return raw(&v, sizeof v); }
    FrameWriter &u32(uint32_t v) { return raw(&v, sizeof v); }
    FrameWriter &u64(uint64_t v) { return raw(&v, sizeof v); }
    FrameWriter &f64(double v) { return raw(&v, sizeof v); }
    FrameWriter &str(std::string_view s) {
        u32(static_cast<uint32_t>(s.size()));
        bytes_.append(s.data(), s.size());
        return *this;
    }
    // The frame, its length filled in.
    const std::string &finish() {
        const uint32_t length = static_cast<uint32_t>(bytes_.size() - frame_header_size);
        std::memcpy(bytes_.data(), &length, sizeof length);
        return bytes_;
    }

private:
    FrameWriter &raw(const void *p, size_t n) {
        bytes_.append(static_cast<const char *>(p), n);
        return *this;
    }
    std::string bytes_;
};

// Reads the fields of one frame's body. Every read checks the bounds: a
// short or malformed body makes ok() false and reads return zero/empty.
class FrameReader {
public:
    explicit FrameReader(std::string_view body) : body_(body) {}
    uint8_t u8() { return fixed<uint8_t>(); }
    uint32_t u32() { return fixed<uint32_t>(); }
    uint64_t u64() { return fixed<uint64_t>(); }
    double f64() { return fixed<double>(); }
    std::string_view str() {
        const uint32_t n = u32();
        if (!ok_ || n > body_.size() - at_) {
            ok_ = false;
            return {};
        }
        std::string_view s = body_.substr(at_, n);
        at_ += n;
        return s;
    }
    bool ok() const { return ok_; }
    // Bytes not read yet.
    size_t left() const { return body_.size() - at_; }
    // All fields read and nothing left over.
    bool complete() const { return ok_ && at_ == body_.size(); }

private:
    template <class T>
    T fixed() {
        T v{};
        if (!ok_ || sizeof(T) > body_.size() - at_) {
            ok_ = false;
            return v;
        }
        std::memcpy(&v, body_.data() + at_, sizeof(T));
        at_ += sizeof(T);
        return v;
    }
    std::string_view body_;
    size_t at_ = 0;
    bool ok_ = true;
};

// ---- what the host reads from a worker ---------------------------------
// A worker runs plugin code, so its frames are untrusted. Each decoder takes
// one frame's body and returns its fields, or nullopt if the body is
// malformed: short, with bytes left over, of an unknown kind, or announcing
// more records than it may hold. Text the host hands to the C services is
// copied (NUL-terminated); set_result's and artifact_save's JSON, which may
// be large, are views into the body.

// Most frames a set_error_frames may carry (the host shows fewer).
inline constexpr uint32_t max_error_frames = 4096;

namespace notice {
struct SetResult {
    std::string_view json;
};
struct SetError {
    std::string type, message, traceback;
};
struct ErrorFrame {
    std::string module, build_id;
    uint64_t offset = 0;
};
struct SetErrorFrames {
    std::string type, message;
    uint32_t flags = 0;
    std::vector<ErrorFrame> frames;
};
struct Progress {
    double fraction = 0;
    bool has_message = false;
    std::string message;
};
struct Log {
    uint32_t level = 0;  // not checked: the host maps unknown levels itself
    std::string message;
};
}  // namespace notice
using NoticeFields =
    std::variant<notice::SetResult, notice::SetError, notice::SetErrorFrames, notice::Progress, notice::Log>;
std::optional<NoticeFields> decode_notice(std::string_view body);

namespace call {
struct ArtifactSave {
    std::string_view data_json;
    std::string parent_id;
};
struct ArtifactGet {
    std::string id;
};
struct DbQuery {
    std::string sql;
    bool has_params = false;
    std::string params;
};
struct SessionBegin {};
struct SessionEnd {
    bool commit = false;
};
struct Schedule {
    std::string task, params;
};
struct JobGet {
    std::string job_id;
};
}  // namespace call
using CallFields = std::variant<call::ArtifactSave, call::ArtifactGet, call::DbQuery, call::SessionBegin,
                                call::SessionEnd, call::Schedule, call::JobGet>;
std::optional<CallFields> decode_call(std::string_view body);

// Done: the th_status the task returned (any value: the host treats every
// status but TH_OK as a failure) and how long its code ran, in the worker's
// clock, so the host can tell a quick task from a slow hand-off.
struct Done {
    uint32_t status = 0;
    uint64_t run_us = 0;
};
std::optional<Done> decode_done(std::string_view body);
struct Validated {
    uint32_t status = 0;
    std::string_view message;
};
std::optional<Validated> decode_validated(std::string_view body);
// InitFailed: the reason.
std::optional<std::string> decode_init_failed(std::string_view body);

// Blocking I/O on a channel end. write_all() sends a whole frame (false if
// the peer is gone); read_frame() reads one, refusing a body over
// `max_body` (nullopt at EOF, on an error or on an oversized frame, with
// `error` saying which).
bool write_all(int fd, std::string_view bytes);
struct Frame {
    FrameType type{};
    std::string body;
};
std::optional<Frame> read_frame(int fd, size_t max_body, std::string *error = nullptr);

// Reads frames through a buffer: one recv takes whatever the peer has sent,
// often several frames (a worker sends a job's result and its Done in one
// write), where read_frame() needs two system calls per frame. A body
// larger than the buffer is read straight into its frame. One reader per
// channel end, used by one thread at a time.
class FrameInbox {
public:
    explicit FrameInbox(size_t max_body) : max_body_(max_body), buffer_(new char[capacity]) {}
    // read() will not block: a whole frame is buffered, or a header it
    // refuses (a body over max_body).
    bool has_frame() const;
    std::optional<Frame> read(int fd, std::string *error = nullptr);

private:
    // A body up to `chunk` bytes is read through the buffer, a larger one
    // straight into its frame.
    static constexpr size_t chunk = 64 * 1024;
    static constexpr size_t capacity = chunk + frame_header_size;
    size_t buffered() const { return end_ - start_; }
    uint32_t next_length() const;  // of the frame at start_ (its header is buffered)
    const size_t max_body_;
    std::unique_ptr<char[]> buffer_;
    size_t start_ = 0, end_ = 0;  // the unread bytes
};

}  // namespace taskhost::exec::worker
