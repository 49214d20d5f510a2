package events

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

func TestParseURI(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "qemu:///system", want: "qemu:///system"},
		{in: "qemu:///system?socket=/tmp/x/libvirt-sock", want: "qemu:///system?socket=/tmp/x/libvirt-sock"},
		{in: "qemu+tcp://hv1/system", want: "qemu+tcp://hv1/system"},
		{in: "/run/libvirt/libvirt-sock", want: "qemu:///system?socket=%2Frun%2Flibvirt%2Flibvirt-sock"},
		{in: "libvirt-sock", err: "want DRIVER"},
		{in: "", err: "want DRIVER"},
		{in: "qemu://%zz/system", err: "invalid URL escape"},
	} {
		u, err := ParseURI(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURI(%q) = %v, %v; want an error with %q", c.in, u, err, c.err)
			}
			continue
		}
		if err != nil || u.String() != c.want {
			t.Errorf("ParseURI(%q) = %v, %v; want %s", c.in, u, err, c.want)
		}
	}
	// A socket path comes back out as go-libvirt's dialer reads it.
	u, _ := ParseURI("/run/libvirt/libvirt-sock")
	if s := u.Query().Get("socket"); s != "/run/libvirt/libvirt-sock" {
		t.Errorf("socket of a path URI: %q", s)
	}
}

func TestUUIDs(t *testing.T) {
	u := [16]byte{0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3, 0x25, 0x16, 0x78, 0x2e, 0x98, 0xab, 0x3f, 0xa0}
	s := FormatUUID(u)
	if s != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" || !IsUUID(s) {
		t.Fatalf("FormatUUID = %q (IsUUID %v)", s, IsUUID(s))
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		if got, err := ParseUUID(in); err != nil || got != u {
			t.Errorf("ParseUUID(%q) = %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "openstack", strings.ToUpper(s), s[:35], s + "0", strings.Replace(s, "-", "x", 1), strings.Replace(s, "4", "g", 1)} {
		if IsUUID(bad) {
			t.Errorf("IsUUID(%q) = true", bad)
		}
	}
	if _, err := ParseUUID("4dea22b3-1d52-d8f3-2516-782e98ab3fa"); err == nil {
		t.Error("ParseUUID of 35 characters: no error")
	}
}

// translate keeps the events the follower reads and tells migrations.
func TestTranslate(t *testing.T) {
	d := golibvirt.Domain{Name: "web1", UUID: golibvirt.UUID{0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3, 0x25, 0x16, 0x78, 0x2e, 0x98, 0xab, 0x3f, 0xa0}, ID: 3}
	const id = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	life := func(ev golibvirt.DomainEventType, detail int32) any {
		return &golibvirt.DomainEventCallbackLifecycleMsg{Msg: golibvirt.DomainEventLifecycleMsg{Dom: d, Event: int32(ev), Detail: detail}}
	}
	for _, c := range []struct {
		name string
		in   any
		want Event
		ok   bool
	}{
		{"started", life(golibvirt.DomainEventStarted, int32(golibvirt.DomainEventStartedBooted)), Event{Kind: Started, UUID: id, Name: "web1"}, true},
		{"started by migration", life(golibvirt.DomainEventStarted, int32(golibvirt.DomainEventStartedMigrated)), Event{Kind: Started, UUID: id, Name: "web1", Migrated: true}, true},
		{"stopped", life(golibvirt.DomainEventStopped, int32(golibvirt.DomainEventStoppedDestroyed)), Event{Kind: Stopped, UUID: id, Name: "web1"}, true},
		{"stopped by migration", life(golibvirt.DomainEventStopped, int32(golibvirt.DomainEventStoppedMigrated)), Event{Kind: Stopped, UUID: id, Name: "web1", Migrated: true}, true},
		{"suspended", life(golibvirt.DomainEventSuspended, 0), Event{}, false},
		{"resumed", life(golibvirt.DomainEventResumed, int32(golibvirt.DomainEventResumedUnpaused)), Event{}, false},
		{"resumed from snapshot", life(golibvirt.DomainEventResumed, int32(golibvirt.DomainEventResumedFromSnapshot)), Event{}, false},
		{"resumed after failed post-copy", life(golibvirt.DomainEventResumed, int32(golibvirt.DomainEventResumedPostcopyFailed)), Event{}, false},
		{"resumed by migration", life(golibvirt.DomainEventResumed, int32(golibvirt.DomainEventResumedMigrated)), Event{Kind: Resumed, UUID: id, Name: "web1", Migrated: true}, true},
		{"resumed in post-copy", life(golibvirt.DomainEventResumed, int32(golibvirt.DomainEventResumedPostcopy)), Event{Kind: Resumed, UUID: id, Name: "web1", Migrated: true}, true},
		{"device added", &golibvirt.DomainEventCallbackDeviceAddedMsg{Dom: d, DevAlias: "net1"}, Event{Kind: DeviceAdded, UUID: id, Name: "web1", Device: "net1"}, true},
		{"device removed", &golibvirt.DomainEventCallbackDeviceRemovedMsg{Msg: golibvirt.DomainEventDeviceRemovedMsg{Dom: d, DevAlias: "net1"}}, Event{Kind: DeviceRemoved, UUID: id, Name: "web1", Device: "net1"}, true},
		{"metadata element", &golibvirt.DomainEventCallbackMetadataChangeMsg{Dom: d, Type: int32(golibvirt.DomainMetadataElement), Nsuri: golibvirt.OptString{"urn:vswitch:libvirt:1"}},
			Event{Kind: MetadataChanged, UUID: id, Name: "web1", Namespace: "urn:vswitch:libvirt:1"}, true},
		{"metadata description", &golibvirt.DomainEventCallbackMetadataChangeMsg{Dom: d, Type: int32(golibvirt.DomainMetadataDescription)}, Event{}, false},
		{"another event", &golibvirt.DomainEventCallbackRebootMsg{}, Event{}, false},
	} {
		got, ok := translate(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: translate = %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// Dial fails with the reason when nothing listens, and when what listens
// does not speak libvirt's protocol it gives up within its timeout
// rather than hang.
func TestDialErrors(t *testing.T) {
	dir := t.TempDir()
	u, _ := ParseURI(filepath.Join(dir, "none-sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dialer(u)(ctx); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("dial a missing socket: %v; want no such file", err)
	}

	path := filepath.Join(dir, "mute-sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts and never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	u, _ = ParseURI(path)
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Dialer(u)(ctx); err == nil {
		t.Error("dial a socket that never answers: no error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("dial a mute socket took %v; want it bounded by its context", took)
	}
}
