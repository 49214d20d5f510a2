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
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// ErrPortNotFound is the canonical "unknown port" error.
//
// Deprecated: use port.NotFound, which this returns (CodeOf maps it to
// not_found).
func ErrPortNotFound(name string) error { return port.NotFound(name) }

// ErrPortExists is the canonical "duplicate port" error.
//
// Deprecated: use port.Exists, which this returns (CodeOf maps it to
// already_exists).
func ErrPortExists(name string) error { return port.Exists(name) }

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
