// The one way a fallible call says "value, or why not": Result<T> holds a T
// or an Error (a kind and a message for people). Every layer's fallible
// calls return it; the store, whose failures arise deep inside a batch,
// throws the same Error as a StoreError instead (store/store.hpp).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace taskhost {

// What went wrong, coarsely enough for a caller to choose an answer (the
// HTTP layer maps each kind to one status).
enum class ErrorKind {
    invalid,      // the caller's input is wrong (400)
    not_found,    // no such thing (404)
    conflict,     // not in a state that allows it (409)
    overloaded,   // full now; retrying later may work (503 + Retry-After)
    unavailable,  // cannot be done now: storage failing, shutting down (503)
    internal,     // a fault of the host (500)
};

struct Error {
    ErrorKind kind = ErrorKind::internal;
    std::string message;  // complete and meant for people: it is shown as is
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T &value() & {
        assert(ok());
        return std::get<0>(v_);
    }
    const T &value() const & {
        assert(ok());
        return std::get<0>(v_);
    }
    T &&value() && {
        assert(ok());
        return std::get<0>(std::move(v_));
    }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }
    T &&operator*() && { return std::move(*this).value(); }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }

    const Error &error() const & {
        assert(!ok());
        return std::get<1>(v_);
    }
    Error &&error() && {
        assert(!ok());
        return std::get<1>(std::move(v_));
    }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error &error() const & {
        assert(failed_);
        return error_;
    }
    Error &&error() && {
        assert(failed_);
        return std::move(error_);
    }

private:
    Error error_;
    bool failed_ = false;
};

// Shorthand for the common failures: `return fail(ErrorKind::invalid, "...")`.
inline Error fail(ErrorKind kind, std::string message) { return Error{kind, std::move(message)}; }

}  // namespace taskhost
