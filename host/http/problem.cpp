#include "http/problem.hpp"

#include <cctype>

#include "util/json_text.hpp"

namespace taskhost::http {

std::string_view status_title(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 416: return "Range Not Satisfiable";
        case 421: return "Misdirected Request";
        case 422: return "Unprocessable Content";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        default: return status >= 500 ? "Server Error" : "Client Error";
    }
}

void problem(httplib::Response &res, int status, std::string_view detail, std::string_view instance) {
    // The type is the title in kebab case: urn:taskhost:error:not-found.
    std::string type;
    for (char c : status_title(status)) type.push_back(c == ' ' ? '-' : static_cast<char>(std::tolower(c)));
    problem(res, status, ProblemKind{type, status_title(status)}, detail, instance);
}

void problem(httplib::Response &res, int status, ProblemKind kind, std::string_view detail, std::string_view instance) {
    std::string body;
    body.reserve(160 + detail.size() + instance.size());
    {
        json_text::Object o(body);
        o.str("type", "urn:taskhost:error:" + std::string(kind.type));
        o.str("title", kind.title);
        o.integer("status", status);
        o.str("detail", detail);
        o.str("instance", instance);
    }
    res.status = status;
    res.body = std::move(body);
    res.set_header("Content-Type", "application/problem+json");
}

void json_response(httplib::Response &res, int status, std::string body) {
    res.status = status;
    res.body = std::move(body);
    res.set_header("Content-Type", "application/json");
}

void sse_headers(const httplib::Request &req, httplib::Response &res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    // The library adds "Connection: close" itself when the client asked for
    // that (it compares the same way); one such header is enough.
    if (req.get_header_value("Connection") != "close") res.set_header("Connection", "keep-alive");
}

void problem(httplib::Response &res, const Error &error, std::string_view instance, int retry_after_s) {
    int status = 500;
    switch (error.kind) {
        case ErrorKind::invalid: status = 400; break;
        case ErrorKind::not_found: status = 404; break;
        case ErrorKind::conflict: status = 409; break;
        case ErrorKind::overloaded:
            res.set_header("Retry-After", std::to_string(retry_after_s));
            status = 503;
            break;
        case ErrorKind::unavailable: status = 503; break;
        case ErrorKind::internal: status = 500; break;
    }
    problem(res, status, error.message, instance);
}

}  // namespace taskhost::http
