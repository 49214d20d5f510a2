package datapath_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/vswitch/vswitch/pkg/backend"

	"github.com/vswitch/vswitch/pkg/backend/queuetest"
	"github.com/vswitch/vswitch/pkg/datapath"
)

// TestSplitBackend runs a switch whose VM ports live on one backend and
// whose uplink lives on another: every queue must be opened on the backend
// for its role, and frames must cross between them both ways.
func TestSplitBackend(t *testing.T) {
	ports, uplink := queuetest.New(), queuetest.New()
	be := backend.Split{Port: named{ports, "pkt"}, Uplink: named{uplink, "xdp"}}
	sw, err := datapath.New(datapath.Config{Uplink: "up0", Mode: datapath.ModeVEPA, Backend: be, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Stop)
	if err := sw.AddPort(access("vnet1", 100, 0, mac1)); err != nil {
		t.Fatal(err)
	}
	if err := sw.Attach("vnet1"); err != nil {
		t.Fatal(err)
	}
	if n := ports.Iface("up0").OpenQueues(); n != 0 {
		t.Errorf("%d uplink queues opened on the port backend", n)
	}
	if n := uplink.Iface("vnet1").OpenQueues(); n != 0 {
		t.Errorf("%d port queues opened on the uplink backend", n)
	}
	if n := uplink.Iface("up0").OpenQueues(); n == 0 {
		t.Error("no uplink queue on the uplink backend")
	}

	ports.Iface("vnet1").Inject(eth(macR, mac1))
	got := uplink.Iface("up0").Wait(1, time.Second)
	if want := eth(macR, mac1, ctag(0, 100)); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("uplink got %x\nwant %x", got, want)
	}
	uplink.Iface("up0").Inject(eth(mac1, macR, ctag(0, 100)))
	got = ports.Iface("vnet1").Wait(1, time.Second)
	if want := eth(mac1, macR); len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("vnet1 got %x\nwant %x", got, want)
	}
	if sw.Backend() != "xdp" || sw.PortBackend() != "pkt" {
		t.Errorf("names: backend %q port backend %q, want xdp pkt", sw.Backend(), sw.PortBackend())
	}
	if n := backend.PortName(ports); n != ports.Name() {
		t.Errorf("port backend of a plain backend %q, want its name %q", n, ports.Name())
	}
}

// named gives a backend another name.
type named struct {
	backend.Backend
	name string
}

func (n named) Name() string { return n.name }
