package api

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPeerHelper is not a test: TestPeerMayCapture runs the test binary
// as a client of its socket (VSW_PEER_SOCKET), as another user, in a user
// namespace, or turning into a set-user-ID program (VSW_PEER_EXEC) once
// connected.
func TestPeerHelper(t *testing.T) {
	sock := os.Getenv("VSW_PEER_SOCKET")
	if sock == "" {
		t.Skip("a helper process of TestPeerMayCapture")
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if exe := os.Getenv("VSW_PEER_EXEC"); exe != "" {
		// Keep the connection across the exec, as an attacker would to
		// send the request from a sibling that shares it.
		f, err := c.(*net.UnixConn).File()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
			t.Fatal(err)
		}
		t.Fatal(syscall.Exec(exe, []string{exe, "30"}, os.Environ()))
	}
	_, _ = io.Copy(io.Discard, c) // until the test closes its end
}

// peerMayCapture answers root and a process with CAP_NET_RAW, and nobody
// else: not a user who is root only in a user namespace of its own
// (unshare -Ur, which any user may run), nor one that connected and then
// became a set-user-ID-root program (su, passwd waiting for a password)
// whose /proc/PID/status then shows every capability.
func TestPeerMayCapture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run clients as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) not installed")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	// Everything the clients run or reach sits in a directory they can
	// pass: the test binary, a set-user-ID-root copy of sleep, the socket.
	dir, err := os.MkdirTemp("", "vsw") // short: a socket's path is
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	suid := filepath.Join(dir, "suid-sleep")
	for _, cp := range []struct {
		from, to string
		mode     os.FileMode
	}{{self, bin, 0o755}, {sleep, suid, 0o755 | os.ModeSetuid}} {
		data, err := os.ReadFile(cp.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cp.to, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(cp.to, cp.mode); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	nobody := []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
	helper := []string{bin, "-test.run=^TestPeerHelper$"}
	for _, tc := range []struct {
		name string
		argv []string
		exec bool // the client execs suid once connected
		ok   bool
	}{
		{"root", helper, false, true},
		{"nobody", join(nobody, []string{"--inh-caps=-all", "--"}, helper), false, false},
		{"nobody with CAP_NET_RAW", join(nobody, []string{"--inh-caps=+net_raw", "--ambient-caps=+net_raw", "--"}, helper), false, true},
		{"nobody as root of its own user namespace", join(nobody, []string{"--inh-caps=-all", "--", unshare, "-Ur"}, helper), false, false},
		{"nobody, then a set-user-ID-root program", join(nobody, []string{"--inh-caps=-all", "--"}, helper), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.argv[0], tc.argv[1:]...)
			cmd.Env = append(os.Environ(), "VSW_PEER_SOCKET="+sock)
			if tc.exec {
				cmd.Env = append(cmd.Env, "VSW_PEER_EXEC="+suid)
			}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					accepted <- c
				}
			}()
			var c net.Conn
			select {
			case c = <-accepted:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the client did not connect; its output: %s", out.String())
			}
			defer c.Close()
			if tc.exec {
				waitEUID0(t, c)
			}
			err := peerMayCapture(c)
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Errorf("allowed to capture")
			}
			if err != nil && !strings.Contains(err.Error(), "capturing needs root or CAP_NET_RAW") {
				t.Errorf("refused with %q, want it to say what is needed", err)
			}
		})
	}
}

func join(parts ...[]string) []string {
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

// waitEUID0 waits until the process at the other end of c runs as
// effective root (it exec'd the set-user-ID program).
func waitEUID0(t *testing.T, c net.Conn) {
	t.Helper()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	if err := rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cred == nil {
		t.Fatalf("SO_PEERCRED: %v", err)
	}
	status := filepath.Join("/proc", strconv.Itoa(int(cred.Pid)), "status")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(status)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" && f[2] == "0" {
				return
			}
		}
	}
	t.Fatalf("pid %d never ran set-user-ID root", cred.Pid)
}
