// libFuzzer target: the request head checker. Whatever it accepts must be
// a whole head ending in an empty line with no bare LF, a length within the
// limit, and the same verdict whatever follows the head (so a pipelined
// request can never change how the one before it is framed).
#include <cstdint>
#include <string>
#include <string_view>

#include "http/request_head.hpp"

using taskhost::http::HeadVerdict;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    taskhost::http::HeadLimits limits;
    limits.max_head_bytes = 2048;
    limits.max_fields = 16;
    limits.max_line_bytes = 512;
    limits.max_body_bytes = 1000;
    const HeadVerdict v = taskhost::http::check_request_head(text, limits);
    if (v.kind == HeadVerdict::Kind::ok) {
        if (v.head_bytes > size || v.head_bytes > limits.max_head_bytes) __builtin_trap();
        const std::string_view head = text.substr(0, v.head_bytes);
        if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") __builtin_trap();
        for (size_t i = 0; i < head.size(); ++i)
            if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) __builtin_trap();
        if (v.body.length > limits.max_body_bytes) __builtin_trap();
        const HeadVerdict alone = taskhost::http::check_request_head(head, limits);
        if (alone.kind != HeadVerdict::Kind::ok || alone.head_bytes != v.head_bytes ||
            alone.body.kind != v.body.kind || alone.body.length != v.body.length)
            __builtin_trap();
    } else if (v.kind == HeadVerdict::Kind::refuse) {
        if (v.status < 400 || v.status > 599 || v.detail.empty()) __builtin_trap();
    }
    return 0;
}
