package datapath

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vswitch/vswitch/pkg/backend"
	portcfg "github.com/vswitch/vswitch/pkg/port"
)

// failOnce fails its first Recv with err, then is closed.
type failOnce struct {
	nullQueue
	err error
}

func (q *failOnce) Recv(b *backend.Batch) (int, error) {
	if err := q.err; err != nil {
		q.err = nil
		return 0, err
	}
	return 0, backend.ErrClosed
}

// A port's link going down or away is what every VM stop and reboot does:
// its receive failure is logged at info; any other failure stays a warning.
func TestPortReceiveFailureLogLevel(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{unix.ENETDOWN, "level=INFO"},
		{unix.ENXIO, "level=INFO"},
		{unix.EIO, "level=WARN"},
	} {
		var buf bytes.Buffer
		sw := limitSwitch(t, FDBLimits{}, portcfg.Config{Name: "vnet1", VLAN: 100})
		sw.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		p := sw.ports["vnet1"]
		io := &portIO{tap: &failOnce{err: tc.err}, up: &nullQueue{}, stop: make(chan struct{}), done: make(chan struct{})}
		newEgressWorker(sw, p, io).run()
		line := buf.String()
		if !strings.Contains(line, "port receive failed") || !strings.Contains(line, tc.want) {
			t.Errorf("%v: logged %q, want %s", tc.err, line, tc.want)
		}
	}
}
