package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vswitch/vswitch/internal/store"
	"github.com/vswitch/vswitch/pkg/api"
)

// putRecord writes a raw port record into the state file at path, as a
// hand edit or an older vswitchd would.
func putRecord(t *testing.T, path, name, rec string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("ports")).Put([]byte(name), []byte(rec)) }); err != nil {
		t.Fatal(err)
	}
}

// A record the API would refuse does not stop the daemon: the other ports
// are restored, and the bad one shows as down with the reason until it is
// deleted or replaced; it is never dropped silently.
func TestUnusableRecordIsADownPort(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	ctx := context.Background()
	if _, err := d.AddPort(ctx, api.PortSpec{Name: "vnet1", VLAN: intp(100)}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	putRecord(t, r.opts.StatePath, "vnet2", `{"name":"vnet2","vlan":5000}`)
	putRecord(t, r.opts.StatePath, "vnet3", `{"name":"vnet3","vl`)

	d = r.start(t)
	ps, err := d.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[0].Name != "vnet1" || ps[0].VLAN != 100 || ps[0].Problem != "" {
		t.Fatalf("ports after restart: %+v", ps)
	}
	for i, want := range map[int]string{1: "invalid VLAN 5000: must be 1-4094", 2: "port vnet3 has a corrupt record"} {
		if p := ps[i]; p.State != "down" || !strings.Contains(p.Problem, want) || !strings.Contains(p.Problem, "vswctl del-port "+p.Name) {
			t.Errorf("port %s: state %q, problem %q; want down and %q with the repair", p.Name, p.State, p.Problem, want)
		}
	}
	st, err := d.Status(ctx)
	if err != nil || st.Ports != 1 || st.PortsUnusable != 2 {
		t.Fatalf("status: %d ports, %d unusable (%v); want 1 and 2", st.Ports, st.PortsUnusable, err)
	}
	// Deleting one repairs the file; the port can then be added. add-port
	// replaces the other.
	if err := d.DeletePort(ctx, "vnet2"); err != nil {
		t.Fatal(err)
	}
	if p, err := d.AddPort(ctx, api.PortSpec{Name: "vnet2", VLAN: intp(200)}); err != nil || p.VLAN != 200 || p.Problem != "" {
		t.Fatalf("add-port after deleting the bad record: %+v, %v", p, err)
	}
	if st, _ := d.Status(ctx); st.PortsUnusable != 1 {
		t.Errorf("status after one repair: %d unusable, want 1", st.PortsUnusable)
	}
	if p, err := d.AddPort(ctx, api.PortSpec{Name: "vnet3", VLAN: intp(300)}); err != nil || p.VLAN != 300 {
		t.Fatalf("add-port over the corrupt record: %+v, %v", p, err)
	}
	if st, _ := d.Status(ctx); st.PortsUnusable != 0 || st.Ports != 3 {
		t.Errorf("status after the repairs: %d ports, %d unusable; want 3 and 0", st.Ports, st.PortsUnusable)
	}
}

// A damaged state file is refused at start with the store's one-line
// error, and the file is left as it was.
func TestDamagedStateFileRefused(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	for _, n := range []string{"vnet1", "vnet2", "vnet3", "vnet4"} {
		if _, err := d.AddPort(context.Background(), api.PortSpec{Name: n, VLAN: intp(100)}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	if err := os.Truncate(r.opts.StatePath, 12<<10); err != nil {
		t.Fatal(err)
	}
	_, err := start(r.opts, r.sys)
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), "truncated") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start on a truncated state file: %v", err)
	}
	if fi, err := os.Stat(r.opts.StatePath); err != nil || fi.Size() != 12<<10 {
		t.Fatalf("the refused file changed: %v %v", fi, err)
	}
	// A fresh file works, with no ports.
	r.opts.StatePath += ".new"
	d = r.start(t)
	if ps, err := d.ListPorts(context.Background()); err != nil || len(ps) != 0 {
		t.Fatalf("ports on a fresh file: %v, %v", ps, err)
	}

}

// A record that passes the port rules but that the datapath refuses at
// start (here the 16th S-channel trunk 1-4094: the learning domains run
// out after 15) is a down port with the reason, counted as unusable, not
// a port listed as if nothing were wrong (found in review). set-port that
// makes it fit brings it into the datapath; del-port removes it.
func TestDatapathRefusedRecordIsDownWithItsProblem(t *testing.T) {
	r := newRig(t)
	d := r.start(t)
	d.Close()
	for i := 1; i <= 16; i++ {
		name := fmt.Sprintf("s%d", i)
		putRecord(t, r.opts.StatePath, name, fmt.Sprintf(`{"name":%q,"trunk":"1-4094","svid":%d}`, name, i))
	}
	d = r.start(t)
	ctx := context.Background()
	inDP := map[string]bool{}
	for _, p := range d.sw.Ports() {
		inDP[p.Config.Name] = true
	}
	if len(inDP) != 15 {
		t.Fatalf("the datapath took %d of the 16 trunks, want 15 (the test needs one refused)", len(inDP))
	}
	var refused string
	ps, err := d.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		switch {
		case inDP[p.Name] && p.Problem != "":
			t.Errorf("port %s in the datapath lists a problem: %s", p.Name, p.Problem)
		case !inDP[p.Name]:
			refused = p.Name
			if p.State != "down" || !strings.Contains(p.Problem, "refused") || !strings.Contains(p.Problem, "S-channel") {
				t.Errorf("refused port %s: state %q problem %q", p.Name, p.State, p.Problem)
			}
		}
	}
	if st, err := d.Status(ctx); err != nil || st.PortsUnusable != 1 {
		t.Errorf("status: ports_unusable %d, %v; want 1", st.PortsUnusable, err)
	}
	// set-port to an access port fits: the port joins the datapath.
	vlan := 100
	p, err := d.UpdatePort(ctx, refused, api.PortSpec{VLAN: &vlan})
	if err != nil {
		t.Fatalf("set-port on the refused port: %v", err)
	}
	if p.Problem != "" || !d.sw.HasPort(refused) {
		t.Errorf("after set-port: problem %q, in the datapath %v", p.Problem, d.sw.HasPort(refused))
	}
	if st, _ := d.Status(ctx); st.PortsUnusable != 0 {
		t.Errorf("after set-port: ports_unusable %d", st.PortsUnusable)
	}
}
