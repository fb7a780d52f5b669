// Checks a request head (request line and header fields) before cpp-httplib
// parses it: the library accepts ambiguous framing (Content-Length with
// Transfer-Encoding, repeated or signed lengths, folded lines) that lets a
// proxy in front and this host disagree on where a request ends, and it has
// no cap on the number or size of header fields. Pure: no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace taskhost::http {

struct HeadLimits {
    size_t max_head_bytes = 64 * 1024;  // request line + header fields + blank line
    size_t max_fields = 100;
    size_t max_line_bytes = 8190;       // one request line or field line, without its CRLF (the
                                        // library's 8192 counts it)
    uint64_t max_body_bytes = 10 * 1024 * 1024;
};

// How the body of a request is delimited (RFC 9112 section 6.3).
struct BodyFraming {
    enum class Kind { none, length, chunked };
    Kind kind = Kind::none;
    uint64_t length = 0;  // Kind::length
};

struct HeadVerdict {
    enum class Kind {
        incomplete,  // no blank line yet, within the limits: read more
        ok,          // a complete head; the body (if any) starts at head_bytes
        refuse,      // answer `status` with `detail`, then close the connection
    };
    Kind kind = Kind::incomplete;
    size_t head_bytes = 0;  // ok: bytes of the head, blank line included
    BodyFraming body;       // ok
    int status = 0;         // refuse
    std::string detail;     // refuse
};

// Looks at the bytes received so far for one request. Empty lines before
// the request line are not skipped here (see leading_empty_lines).
HeadVerdict check_request_head(std::string_view received, const HeadLimits &limits);

// Bytes of CRLF (or LF) empty lines at the start of `received`, which RFC
// 9112 asks a server to ignore before a request line.
size_t leading_empty_lines(std::string_view received);

}  // namespace taskhost::http
