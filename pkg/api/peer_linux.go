//go:build linux

package api

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerMayCapture says whether the process at the other end of c may
// capture frames: root, or a process with CAP_NET_RAW in its effective
// set, as a packet socket would need (SO_PEERCRED, then
// /proc/PID/status). Anything else, a TCP connection included, may not:
// the error says why.
func peerMayCapture(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("capturing needs a connection on vswitchd's Unix socket")
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("capturing: cannot tell who is asking: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return fmt.Errorf("capturing: cannot tell who is asking (SO_PEERCRED: %v)", firstErr(err, cerr))
	}
	if cred.Uid == 0 || hasCapNetRaw(int(cred.Pid)) {
		return nil
	}
	return fmt.Errorf("capturing needs root or CAP_NET_RAW, as a packet capture does (uid %d has neither): run vswctl capture as root", cred.Uid)
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// hasCapNetRaw reads the effective capabilities of process pid.
func hasCapNetRaw(pid int) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_RAW) != 0
		}
	}
	return false
}
