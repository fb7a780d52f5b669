// taskhost SDK: the exceptions a task may throw or see.
#pragma once

#include <taskhost/abi.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace taskhost {

// Thrown by Context::throw_if_cancelled(); reported as "taskhost::Cancelled".
class Cancelled : public std::exception {
public:
    const char *what() const noexcept override { return "job was cancelled"; }
};

// Thrown by a task whose failure another attempt cannot mend: the job fails
// now, whatever its retry policy.
class PermanentError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The caller's params do not bind to the task's parameters. The message is
// one line and names the parameter.
class InvalidParams : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// A value for the host (a result, artifact data, params) holds a string
// that is not valid UTF-8. JSON cannot carry it, and the SDK does not
// replace bytes behind the task's back: the task fails and says where.
class InvalidUtf8 : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// The host's service table lacks a function this plugin tried to use.
class ServiceUnavailable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A host service returned a status other than TH_OK.
class HostError : public std::runtime_error {
public:
    HostError(th_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    th_status status() const noexcept { return status_; }

private:
    th_status status_;
};

}  // namespace taskhost
