// libFuzzer target: what the host reads from a worker process. The worker
// runs plugin code, so every byte it writes to its channel is hostile:
// read_frame() and the decoders of its frames (worker_protocol.hpp) must
// never crash, overflow or allocate beyond what the input holds.
//
// The input is the byte stream a worker writes: it goes through a real
// socketpair into a FrameInbox (as the host reads it), and each frame read
// is decoded by its type. read_frame(), the unbuffered reader, must read
// the same frames from the same bytes.
// The input after its first byte is also decoded as one body, by the type
// that byte picks (of those the host decodes), so the decoders are reached without a valid header.
// Every frame read must be the input's own bytes, and every body a decoder
// accepts must be exactly what its fields encode back to.
#include "exec/worker_protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <variant>

using namespace taskhost::exec::worker;

namespace {

constexpr size_t max_body = 1u << 20;
// Small enough that a socket's buffer holds it all before it is read.
constexpr size_t max_input = 64u << 10;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

// A body as the worker side writes it (the frame without its header).
std::string body_of(FrameWriter &frame) { return frame.finish().substr(frame_header_size); }

std::string encode(const NoticeFields &fields) {
    FrameWriter f(FrameType::notice);
    if (const auto *n = std::get_if<notice::SetResult>(&fields)) {
        f.u8(static_cast<uint8_t>(Notice::set_result)).str(n->json);
    } else if (const auto *n = std::get_if<notice::SetError>(&fields)) {
        f.u8(static_cast<uint8_t>(Notice::set_error)).str(n->type).str(n->message).str(n->traceback);
    } else if (const auto *n = std::get_if<notice::SetErrorFrames>(&fields)) {
        f.u8(static_cast<uint8_t>(Notice::set_error_frames)).str(n->type).str(n->message).u32(n->flags);
        f.u32(static_cast<uint32_t>(n->frames.size()));
        for (const notice::ErrorFrame &e : n->frames) f.str(e.module).str(e.build_id).u64(e.offset);
    } else if (const auto *n = std::get_if<notice::Progress>(&fields)) {
        f.u8(static_cast<uint8_t>(Notice::progress)).f64(n->fraction).u8(n->has_message).str(n->message);
    } else if (const auto *n = std::get_if<notice::Log>(&fields)) {
        f.u8(static_cast<uint8_t>(Notice::log)).u32(n->level).str(n->message);
    }
    return body_of(f);
}

std::string encode(const CallFields &fields) {
    FrameWriter f(FrameType::call);
    if (const auto *c = std::get_if<call::ArtifactSave>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::artifact_save)).str(c->data_json).str(c->parent_id);
    } else if (const auto *c = std::get_if<call::ArtifactGet>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::artifact_get)).str(c->id);
    } else if (const auto *c = std::get_if<call::DbQuery>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::db_query)).str(c->sql).u8(c->has_params).str(c->params);
    } else if (std::holds_alternative<call::SessionBegin>(fields)) {
        f.u8(static_cast<uint8_t>(Service::session_begin));
    } else if (const auto *c = std::get_if<call::SessionEnd>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::session_end)).u8(c->commit);
    } else if (const auto *c = std::get_if<call::Schedule>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::schedule)).str(c->task).str(c->params);
    } else if (const auto *c = std::get_if<call::JobGet>(&fields)) {
        f.u8(static_cast<uint8_t>(Service::job_get)).str(c->job_id);
    }
    return body_of(f);
}

// An accepted body encodes back to itself, but for the bytes of its flags
// (any non-zero byte is true): the same length, every byte read, and its
// encoding decodes to the same fields.
template <class Fields, class Decode>
void check_round_trip(std::string_view body, const Fields &fields, Decode decode) {
    const std::string again = encode(fields);
    require(again.size() == body.size());
    const std::optional<Fields> redecoded = decode(again);
    require(redecoded.has_value());
    require(encode(*redecoded) == again);
}

// Decodes `body` as the host does a frame of `type` from a worker.
void decode(FrameType type, std::string_view body) {
    switch (type) {
        case FrameType::notice:
            if (const std::optional<NoticeFields> fields = decode_notice(body)) {
                if (const auto *n = std::get_if<notice::SetErrorFrames>(&*fields))
                    require(n->frames.size() <= max_error_frames);
                check_round_trip(body, *fields, decode_notice);
            }
            break;
        case FrameType::call:
            if (const std::optional<CallFields> fields = decode_call(body)) check_round_trip(body, *fields, decode_call);
            break;
        case FrameType::done:
            if (const std::optional<Done> done = decode_done(body)) {
                FrameWriter f(FrameType::done);
                f.u32(done->status).u64(done->run_us);
                require(body_of(f) == body);
            }
            break;
        case FrameType::validated:
            if (const std::optional<Validated> v = decode_validated(body)) {
                FrameWriter f(FrameType::validated);
                f.u32(v->status).str(v->message);
                require(body_of(f) == body);
            }
            break;
        case FrameType::init_failed:
            if (const std::optional<std::string> reason = decode_init_failed(body)) {
                FrameWriter f(FrameType::init_failed);
                f.str(*reason);
                require(body_of(f) == body);
            }
            break;
        default: break;  // ready has no fields; the rest the host does not read from a worker
    }
}

// A socket to read `input` from, its writing end shut.
int stream_of(std::string_view input) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) __builtin_trap();
    require(write_all(pair[1], input));
    ::close(pair[1]);
    return pair[0];
}

// Reads every frame of `input` through a socketpair, as the host reads a
// worker's channel, and decodes each.
void read_stream(std::string_view input) {
    const int fd = stream_of(input), plain_fd = stream_of(input);
    FrameInbox inbox(max_body);
    size_t at = 0;
    std::string error, plain_error;
    while (std::optional<Frame> frame = inbox.read(fd, &error)) {
        const std::optional<Frame> plain = read_frame(plain_fd, max_body, &plain_error);
        require(plain && plain->type == frame->type && plain->body == frame->body);
        require(frame->body.size() <= max_body);
        // What was read is the input's next frame, byte for byte.
        const uint32_t length = static_cast<uint32_t>(frame->body.size());
        require(input.size() - at >= frame_header_size + length);
        require(std::memcmp(input.data() + at, &length, sizeof length) == 0);
        require(static_cast<uint8_t>(input[at + 4]) == static_cast<uint8_t>(frame->type));
        require(input.substr(at + frame_header_size, length) == frame->body);
        at += frame_header_size + length;
        decode(frame->type, frame->body);
    }
    // It stopped for a reason, and only before the input's end if a frame
    // was cut short or too large; so did the plain reader.
    require(!error.empty());
    require(!read_frame(plain_fd, max_body, &plain_error) && plain_error == error);
    ::close(fd);
    ::close(plain_fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > max_input) return 0;
    const std::string_view input(reinterpret_cast<const char *>(data), size);
    read_stream(input);
    static constexpr FrameType from_worker[] = {FrameType::notice, FrameType::call, FrameType::done,
                                                FrameType::validated, FrameType::init_failed};
    if (!input.empty())
        decode(from_worker[static_cast<uint8_t>(input[0]) % std::size(from_worker)], input.substr(1));
    return 0;
}
