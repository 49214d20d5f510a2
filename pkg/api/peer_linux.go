//go:build linux

package api

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerMayCapture says whether the process at the other end of c may
// capture frames: root, or a process with CAP_NET_RAW, as a packet socket
// would need (SO_PEERCRED, then /proc/PID; see peerHasNetRaw). Anything
// else, a TCP connection included, may not: the error says why.
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
	if cred.Uid == 0 || peerHasNetRaw(int(cred.Pid), cred.Uid) {
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

// peerHasNetRaw says whether process pid, which connected as user uid
// (SO_PEERCRED: the credentials of the connect), holds CAP_NET_RAW the
// way a packet socket on this host needs it. /proc/PID/status shows its
// capabilities now and relative to its own user namespace, so all of
// these must hold:
//
//   - CAP_NET_RAW is in its effective set (CapEff);
//   - it is still wholly the user that connected (every Uid, real,
//     effective, saved and file system, is uid): a process that connected
//     and then exec'd a set-user-ID-root program (su or passwd waiting
//     for a password) shows that program's capabilities;
//   - it is in vswitchd's user namespace (its uid_map reads as ours):
//     capabilities in a user namespace of its own, which any user can
//     make (unshare -Ur), count only there.
//
// A process that connected and then exec'd a program with file
// capabilities (setcap cap_net_raw+ep) passes while that program keeps
// them effective: /proc cannot tell it from one started that way.
func peerHasNetRaw(pid int, uid uint32) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	ours, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	theirs, err := os.ReadFile(proc + "/uid_map")
	if err != nil || !bytes.Equal(ours, theirs) {
		return false
	}
	f, err := os.Open(proc + "/status")
	if err != nil {
		return false
	}
	defer f.Close()
	var uidsOK, netRaw bool
	want := strconv.FormatUint(uint64(uid), 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			ids := strings.Fields(v)
			uidsOK = len(ids) == 4
			for _, id := range ids {
				uidsOK = uidsOK && id == want
			}
		}
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			netRaw = err == nil && caps&(1<<unix.CAP_NET_RAW) != 0
		}
	}
	return sc.Err() == nil && uidsOK && netRaw
}
