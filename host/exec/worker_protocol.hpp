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
#include <optional>
#include <string>
#include <string_view>

namespace taskhost::exec::worker {

inline constexpr const char *mode_argument = "__worker";
inline constexpr int worker_image_fd = 3;
inline constexpr int worker_channel_fd = 4;
inline constexpr int worker_control_fd = 5;
// How the worker's loader names the plugin image (its frames say so).
inline constexpr const char *worker_image_path = "/proc/self/fd/3";

enum class FrameType : uint8_t {
    // host -> worker
    invoke = 1,    // u64 seq, str task, str job_id, str params
    validate = 2,  // str task, str params
    reply = 3,     // u32 status, str out, str err
    // worker -> host
    ready = 10,        // (nothing)
    init_failed = 11,  // str reason
    call = 12,         // u8 Service, then its fields (below)
    notice = 13,       // u8 Notice, then its fields (below)
    done = 14,         // u32 status (th_status of invoke)
    validated = 15,    // u32 status, str message
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

}  // namespace taskhost::exec::worker
