//go:build !unix

package store

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("locked")

// flock leaves locking to bbolt where there is no flock.
func flock(*os.File, bool) error { return nil }
