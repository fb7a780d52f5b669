#include "http/request_head.hpp"

#include <algorithm>

namespace taskhost::http {

namespace {

HeadVerdict refuse(int status, std::string detail) {
    HeadVerdict v;
    v.kind = HeadVerdict::Kind::refuse;
    v.status = status;
    v.detail = std::move(detail);
    return v;
}

// RFC 9110 token characters (field names, methods).
bool is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Field values may hold visible characters, spaces, tabs and obs-text; no
// other control character (a NUL or a bare CR could split a header for the
// library but not for a proxy).
bool is_field_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x | 0x20) == (y | 0x20);
           });
}

std::string_view trim_leading(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
}

std::string printable(std::string_view s) {
    std::string out;
    for (unsigned char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    if (s.size() > 64) out += "...";
    return out;
}

}  // namespace

size_t leading_empty_lines(std::string_view received) {
    size_t i = 0;
    for (;;) {
        if (received.substr(i, 2) == "\r\n") i += 2;
        else if (received.substr(i, 1) == "\n") i += 1;
        else return i;
    }
}

HeadVerdict check_request_head(std::string_view received, const HeadLimits &limits) {
    // Find the end of the head within the limit; a bare LF anywhere is
    // refused at once rather than waited on (the library would skip such a
    // line, a proxy would not).
    const std::string_view window = received.substr(0, limits.max_head_bytes);
    size_t end = std::string_view::npos;
    for (size_t i = 0; i < window.size(); ++i) {
        if (window[i] != '\n') continue;
        if (i == 0 || window[i - 1] != '\r') return refuse(400, "Lines of a request head must end with CRLF");
        if (i >= 3 && window.substr(i - 3, 4) == "\r\n\r\n") {
            end = i + 1;
            break;
        }
    }
    if (end == std::string_view::npos) {
        // Lines too long or too many are refused before the blank line comes.
        size_t line_start = window.rfind('\n');
        line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
        const size_t fields = static_cast<size_t>(std::count(window.begin(), window.end(), '\n'));
        if (window.size() - line_start > limits.max_line_bytes)
            return refuse(fields == 0 ? 414 : 431,
                          fields == 0 ? "The request line is longer than " + std::to_string(limits.max_line_bytes) +
                                            " bytes"
                                      : "A header field is longer than " + std::to_string(limits.max_line_bytes) +
                                            " bytes");
        if (fields > limits.max_fields + 1)
            return refuse(431, "More than " + std::to_string(limits.max_fields) + " header fields");
        if (received.size() >= limits.max_head_bytes)
            return refuse(431, "The request head is larger than " + std::to_string(limits.max_head_bytes) + " bytes");
        return {};
    }

    const std::string_view head = received.substr(0, end - 2);  // lines, each with its CRLF
    size_t pos = head.find("\r\n");
    const std::string_view request_line = head.substr(0, pos);
    if (request_line.size() > limits.max_line_bytes)
        return refuse(414, "The request line is longer than " + std::to_string(limits.max_line_bytes) + " bytes");
    const size_t method_end = request_line.find(' ');
    if (method_end == 0 || method_end == std::string_view::npos ||
        !std::all_of(request_line.begin(), request_line.begin() + static_cast<ptrdiff_t>(method_end),
                     [](char c) { return is_tchar(static_cast<unsigned char>(c)); }))
        return refuse(400, "Malformed request line");
    const size_t version_start = request_line.rfind(' ');
    const std::string_view version = request_line.substr(version_start + 1);
    if (version_start == method_end || version.substr(0, 5) != "HTTP/")
        return refuse(400, "Malformed request line");
    const bool http10 = version == "HTTP/1.0";
    if (version != "HTTP/1.1" && !http10)
        return refuse(505, "HTTP version " + printable(version) + " is not supported (HTTP/1.1 or HTTP/1.0)");

    size_t fields = 0, content_lengths = 0, transfer_encodings = 0, hosts = 0;
    std::string_view content_length, transfer_encoding;
    pos += 2;
    while (pos < head.size()) {
        const size_t eol = head.find("\r\n", pos);
        const std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        if (++fields > limits.max_fields)
            return refuse(431, "More than " + std::to_string(limits.max_fields) + " header fields");
        if (line.size() > limits.max_line_bytes)
            return refuse(431, "A header field is longer than " + std::to_string(limits.max_line_bytes) + " bytes");
        if (line.front() == ' ' || line.front() == '\t')
            return refuse(400, "Obsolete line folding in a header field is not accepted");
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) return refuse(400, "A header field has no colon: " + printable(line));
        const std::string_view name = line.substr(0, colon);
        for (unsigned char c : name) {
            if (c == ' ' || c == '\t')
                return refuse(400, "Whitespace between a header field name and its colon: " + printable(line));
            if (!is_tchar(c)) return refuse(400, "Invalid character in header field name: " + printable(name));
        }
        if (name.empty()) return refuse(400, "A header field has an empty name");
        const std::string_view value = trim_leading(line.substr(colon + 1));
        if (!std::all_of(value.begin(), value.end(), [](char c) { return is_field_value_char(static_cast<unsigned char>(c)); }))
            return refuse(400, "Invalid character in the value of header field " + printable(name));
        if (iequals(name, "Content-Length")) {
            ++content_lengths;
            content_length = value;
        } else if (iequals(name, "Transfer-Encoding")) {
            ++transfer_encodings;
            transfer_encoding = value;
        } else if (iequals(name, "Host")) {
            ++hosts;
        }
    }

    if (hosts > 1) return refuse(400, "More than one Host header field");
    if (hosts == 0 && !http10) return refuse(400, "An HTTP/1.1 request must have a Host header field");

    HeadVerdict ok;
    ok.kind = HeadVerdict::Kind::ok;
    ok.head_bytes = end;
    if (transfer_encodings > 0) {
        if (content_lengths > 0)
            return refuse(400, "A request must not have both Content-Length and Transfer-Encoding");
        if (transfer_encodings > 1) return refuse(400, "More than one Transfer-Encoding header field");
        if (http10) return refuse(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
        // The library compares the whole value with "chunked"; anything else
        // (a list, a trailing space) it would read as a body without length.
        if (!iequals(transfer_encoding, "chunked"))
            return refuse(501, "Transfer-Encoding '" + printable(transfer_encoding) +
                                   "' is not supported (only 'chunked')");
        ok.body.kind = BodyFraming::Kind::chunked;
        return ok;
    }
    if (content_lengths > 1) return refuse(400, "More than one Content-Length header field");
    if (content_lengths == 1) {
        const bool digits = !content_length.empty() && content_length.size() <= 19 &&
                            std::all_of(content_length.begin(), content_length.end(),
                                        [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) return refuse(400, "Content-Length must be a decimal number: " + printable(content_length));
        uint64_t length = 0;
        for (char c : content_length) length = length * 10 + static_cast<uint64_t>(c - '0');
        if (length > limits.max_body_bytes)
            return refuse(413, "The request body (" + std::to_string(length) + " bytes) is larger than the " +
                                   std::to_string(limits.max_body_bytes) + " bytes the server accepts");
        if (length > 0) {
            ok.body.kind = BodyFraming::Kind::length;
            ok.body.length = length;
        }
    }
    return ok;
}

}  // namespace taskhost::http
