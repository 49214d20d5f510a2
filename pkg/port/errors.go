package port

import (
	"errors"
	"fmt"
)

// Sentinel errors of port lookups; test with errors.Is. NotFound and
// Exists build errors that match them and carry the message the operator
// sees.
var (
	// ErrNotFound: no port of that name is configured.
	ErrNotFound = errors.New("port not found")
	// ErrExists: a port of that name is already configured.
	ErrExists = errors.New("port already exists")
)

// NotFound is the error for an unknown port name:
// "port vnet1 not found (see vswctl list-ports)"; errors.Is(err,
// ErrNotFound) holds.
func NotFound(name string) error {
	return &lookupError{msg: fmt.Sprintf("port %s not found (see vswctl list-ports)", name), err: ErrNotFound}
}

// Exists is the error for adding a port whose name is taken:
// "port vnet1 already exists (use vswctl set-port to change it)";
// errors.Is(err, ErrExists) holds.
func Exists(name string) error {
	return &lookupError{msg: fmt.Sprintf("port %s already exists (use vswctl set-port to change it)", name), err: ErrExists}
}

type lookupError struct {
	msg string
	err error
}

func (e *lookupError) Error() string { return e.msg }
func (e *lookupError) Unwrap() error { return e.err }
