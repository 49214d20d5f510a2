//go:build !linux

package api

import (
	"errors"
	"net"
)

// peerMayCapture refuses: who is at the other end can only be told on
// Linux.
func peerMayCapture(c net.Conn) error {
	return errors.New("capturing needs Linux (SO_PEERCRED)")
}
