#include "exec/worker_protocol.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace taskhost::exec::worker {

namespace {

// Reads exactly n bytes; false at EOF or on an error.
bool read_exactly(int fd, char *into, size_t n, std::string *error) {
    size_t done = 0;
    while (done < n) {
        const ssize_t got = ::recv(fd, into + done, n - done, MSG_WAITALL);
        if (got > 0) {
            done += static_cast<size_t>(got);
            continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (error) *error = got == 0 ? "the channel closed" : std::string("recv: ") + std::strerror(errno);
        return false;
    }
    return true;
}

}  // namespace

std::optional<NoticeFields> decode_notice(std::string_view body) {
    FrameReader in(body);
    std::optional<NoticeFields> out;
    switch (static_cast<Notice>(in.u8())) {
        case Notice::set_result: out = notice::SetResult{in.str()}; break;
        case Notice::set_error: {
            notice::SetError e;
            e.type = in.str();
            e.message = in.str();
            e.traceback = in.str();
            out = std::move(e);
            break;
        }
        case Notice::set_error_frames: {
            notice::SetErrorFrames e;
            e.type = in.str();
            e.message = in.str();
            e.flags = in.u32();
            const uint32_t n = in.u32();
            if (!in.ok() || n > max_error_frames) return std::nullopt;
            // Each record takes at least 16 bytes: a count the body cannot
            // hold is refused before anything is allocated for it.
            if (n > in.left() / 16) return std::nullopt;
            e.frames.resize(n);
            for (notice::ErrorFrame &f : e.frames) {
                f.module = in.str();
                f.build_id = in.str();
                f.offset = in.u64();
            }
            out = std::move(e);
            break;
        }
        case Notice::progress: {
            notice::Progress p;
            p.fraction = in.f64();
            p.has_message = in.u8() != 0;
            p.message = in.str();
            out = std::move(p);
            break;
        }
        case Notice::log: {
            notice::Log l;
            l.level = in.u32();
            l.message = in.str();
            out = std::move(l);
            break;
        }
    }
    if (!in.complete()) return std::nullopt;
    return out;
}

std::optional<CallFields> decode_call(std::string_view body) {
    FrameReader in(body);
    std::optional<CallFields> out;
    switch (static_cast<Service>(in.u8())) {
        case Service::artifact_save: {
            call::ArtifactSave c;
            c.data_json = in.str();
            c.parent_id = in.str();
            out = std::move(c);
            break;
        }
        case Service::artifact_get: out = call::ArtifactGet{std::string(in.str())}; break;
        case Service::db_query: {
            call::DbQuery c;
            c.sql = in.str();
            c.has_params = in.u8() != 0;
            c.params = in.str();
            out = std::move(c);
            break;
        }
        case Service::session_begin: out = call::SessionBegin{}; break;
        case Service::session_end: out = call::SessionEnd{in.u8() != 0}; break;
        case Service::schedule: {
            call::Schedule c;
            c.task = in.str();
            c.params = in.str();
            out = std::move(c);
            break;
        }
        case Service::job_get: out = call::JobGet{std::string(in.str())}; break;
    }
    if (!in.complete()) return std::nullopt;
    return out;
}

std::optional<Done> decode_done(std::string_view body) {
    FrameReader in(body);
    Done done;
    done.status = in.u32();
    done.run_us = in.u64();
    if (!in.complete()) return std::nullopt;
    return done;
}

std::optional<Validated> decode_validated(std::string_view body) {
    FrameReader in(body);
    Validated v;
    v.status = in.u32();
    v.message = in.str();
    if (!in.complete()) return std::nullopt;
    return v;
}

std::optional<std::string> decode_init_failed(std::string_view body) {
    FrameReader in(body);
    std::string reason(in.str());
    if (!in.complete()) return std::nullopt;
    return reason;
}

bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        // MSG_NOSIGNAL: a peer that died is an answer, not a SIGPIPE.
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::optional<Frame> read_frame(int fd, size_t max_body, std::string *error) {
    char header[frame_header_size];
    if (!read_exactly(fd, header, sizeof header, error)) return std::nullopt;
    uint32_t length = 0;
    std::memcpy(&length, header, sizeof length);
    if (length > max_body) {
        if (error) *error = "a frame of " + std::to_string(length) + " bytes, more than " + std::to_string(max_body);
        return std::nullopt;
    }
    Frame frame;
    frame.type = static_cast<FrameType>(static_cast<uint8_t>(header[4]));
    frame.body.resize(length);
    if (length > 0 && !read_exactly(fd, frame.body.data(), length, error)) return std::nullopt;
    return frame;
}

uint32_t FrameInbox::next_length() const {
    uint32_t length = 0;
    std::memcpy(&length, buffer_.get() + start_, sizeof length);
    return length;
}

bool FrameInbox::has_frame() const {
    if (buffered() < frame_header_size) return false;
    const uint32_t length = next_length();
    return length > max_body_ || buffered() - frame_header_size >= length;  // (too large: read() refuses it)
}

std::optional<Frame> FrameInbox::read(int fd, std::string *error) {
    for (;;) {
        if (buffered() >= frame_header_size) {
            const uint32_t length = next_length();
            if (length > max_body_) {
                if (error)
                    *error = "a frame of " + std::to_string(length) + " bytes, more than " + std::to_string(max_body_);
                return std::nullopt;
            }
            Frame frame;
            frame.type = static_cast<FrameType>(static_cast<uint8_t>(buffer_[start_ + 4]));
            const char *body = buffer_.get() + start_ + frame_header_size;
            const size_t have = buffered() - frame_header_size;
            if (have >= length) {
                frame.body.assign(body, length);
                start_ += frame_header_size + length;
                if (start_ == end_) start_ = end_ = 0;
                return frame;
            }
            if (length > chunk) {
                frame.body.resize(length);
                std::memcpy(frame.body.data(), body, have);
                start_ = end_ = 0;
                if (!read_exactly(fd, frame.body.data() + have, length - have, error)) return std::nullopt;
                return frame;
            }
        }
        // A frame that fits the buffer but not after start_: move it to the front.
        if (start_ > 0 && end_ == capacity) {
            std::memmove(buffer_.get(), buffer_.get() + start_, buffered());
            end_ -= start_;
            start_ = 0;
        }
        ssize_t got;
        do {
            got = ::recv(fd, buffer_.get() + end_, capacity - end_, 0);
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            if (error) *error = got == 0 ? "the channel closed" : std::string("recv: ") + std::strerror(errno);
            return std::nullopt;
        }
        end_ += static_cast<size_t>(got);
    }
}

}  // namespace taskhost::exec::worker
