package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/vswitch/vswitch/pkg/port"
)

// Codes the HTTP layer itself produces (in addition to those in types.go).
const (
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeTooLarge         = "request_too_large"
	CodeUnavailable      = "unavailable" // the daemon could not be reached
)

// HTTPStatus maps an error code to the HTTP status the server answers with.
// Unknown codes are client errors (400): only CodeInternal is a 500.
func HTTPStatus(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeAlreadyExists:
		return http.StatusConflict
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeInternal, CodeBadRecord:
		return http.StatusInternalServerError
	case CodeUnavailable, CodeStarting:
		return http.StatusServiceUnavailable
	case CodeTooManyCaptures:
		return http.StatusTooManyRequests
	case CodeNotSupported:
		return http.StatusNotImplemented
	case CodeForbidden:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// ErrPortNotFound is the canonical "unknown port" error. As before port.NotFound
// existed, it is a *ServiceError (errors.As finds one, code not_found);
// errors.Is(err, port.ErrNotFound) holds too.
//
// Deprecated: use port.NotFound (CodeOf maps it to not_found).
func ErrPortNotFound(name string) error {
	return deprecatedPortError(CodeNotFound, port.NotFound(name))
}

// ErrPortExists is the canonical "duplicate port" error. As before
// port.Exists existed, it is a *ServiceError (errors.As finds one, code
// already_exists); errors.Is(err, port.ErrExists) holds too.
//
// Deprecated: use port.Exists (CodeOf maps it to already_exists).
func ErrPortExists(name string) error {
	return deprecatedPortError(CodeAlreadyExists, port.Exists(name))
}

// portError is what ErrPortNotFound and ErrPortExists return: both the
// *ServiceError their callers may look for with errors.As and the port
// error they may test with errors.Is.
type portError struct {
	se  *ServiceError
	err error
}

func deprecatedPortError(code string, err error) error {
	return &portError{se: &ServiceError{Code: code, Msg: err.Error()}, err: err}
}

func (e *portError) Error() string   { return e.se.Msg }
func (e *portError) Unwrap() []error { return []error{e.se, e.err} }

// UnreachableError is returned by Client when nothing answers on the socket.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach vswitchd at %s: is vswitchd running? (start it, or set --socket / VSWITCHD_SOCKET)", e.Socket)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err means the daemon could not be reached.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

// oneLine flattens a message so an error is always a single line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
