package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/vswitch/vswitch/internal/libvirt"
	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

// What libvirt passes after libvirt-hook is the hook's arguments, never
// flags: a domain named "-h" or "--socket=x", or an EXTRA of "--help",
// used to print help or go to another socket, exit 0, and start the VM
// without its port. vswctl's flags before the subcommand still count.
func TestHookArgsAreNeverFlags(t *testing.T) {
	fake, sock := daemon(t)
	xml := hookXML("d", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", [2]string{"vnet1", "52:54:00:00:00:01"})
	for _, args := range [][]string{
		{"-h", "start", "begin", "-"}, {"--socket=/nonexistent", "start", "begin", "-"}, {"web", "start", "begin", "--help"},
		{"-o", "start", "begin", "-"}, {"--", "start", "begin"},
	} {
		r := hook(t, sock, xml, args...)
		if p, err := fake.GetPort(context.Background(), "vnet1"); r.code != 0 || err != nil || p.Owner == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, port %v: want the port added", args, r.code, r.stdout, r.stderr, err)
		}
		_ = fake.DeletePort(context.Background(), "vnet1")
	}
	// Flags of vswctl go before the subcommand, in every form.
	for _, pre := range [][]string{{"--socket", sock}, {"--socket=" + sock}, {"-o", "json", "--socket", sock}, {"-ojson", "--socket", sock}} {
		var out, errb bytes.Buffer
		args := append(slices.Clone(pre), "libvirt-hook", "d", "start", "begin", "-")
		if code := runIO(args, strings.NewReader(xml), &out, &errb); code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
		_ = fake.DeletePort(context.Background(), "vnet1")
	}
	// "libvirt-hook --help" alone is still help; too few arguments a usage error.
	if r := vswctl(t, "", "libvirt-hook", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Entry point for libvirt") {
		t.Errorf("libvirt-hook --help: %+v", r)
	}
	if r := hook(t, sock, xml, "-h"); r.code != 0 || !strings.Contains(r.stdout, "Entry point for libvirt") {
		t.Errorf("libvirt-hook -h: %+v", r)
	}
	hook(t, sock, xml, "-h", "start").expect(t, 2, "want DOMAIN OPERATION SUBOP")
	cmdArgs := hookArgv(newRootForTest(), []string{"--socket", "libvirt-hook", "libvirt-hook", "a"})
	if !slices.Equal(cmdArgs, []string{"--socket", "libvirt-hook", "libvirt-hook", "--", "a"}) {
		t.Errorf("hookArgv took the --socket value for the subcommand: %q", cmdArgs)
	}
}

func newRootForTest() *cobra.Command { return (&app{}).newRoot() }

// FuzzHook runs the whole hook (arguments, one per line, and the domain
// XML on stdin) against the fake daemon. Whatever comes in:
//
//   - the exit code is 0, 1 or 2, and a failure is one line on stderr;
//   - an ignored call, and "migrate begin", print nothing on stdout
//     and change no port;
//   - only "start" fails (libvirt kills a running VM when "reconnect"
//     fails, and ignores "stopped" and "release");
//   - a successful start or reconnect leaves each described port on its
//     tap, owned by the domain;
//   - a stop removes exactly the ports the domain owns (owner and MAC),
//     and leaves the others, including those with its MACs but another
//     owner.
func FuzzHook(f *testing.F) {
	good := hookXML("web1", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0", [2]string{"vnet1", "52:54:00:00:00:01"}, [2]string{"vnet2", "52:54:00:00:00:02"})
	for _, s := range []struct{ args, xml string }{
		{"web1\nstart\nbegin\n-", good}, {"web1\nreconnect\nbegin\n-", good}, {"web1\nstopped\nend\n-", good},
		{"web1\nrelease\nend\nshutdown", good}, {"web1\nprepare\nbegin\n-", good}, {"web1\nmigrate\nbegin\n-", "<domain/>"},
		{"web1\nmigrate\nbegin\n-", good}, {"web1\nstopped\nend\nmigrated", good},
		{"-h\nstart\nbegin\n-", good}, {"web1\nstart", good}, {"web1\nstart\nbegin\n-", "<domain"},
		{"web1\nstart\nbegin\n-", strings.Replace(good, `vlan="100"`, `vlan="5000"`, 1)},
		{"web1\nstart\nbegin\n-", strings.Replace(good, "<uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>", "", 1)},
	} {
		f.Add(s.args, []byte(s.xml))
	}
	fake := apitest.NewFake()
	sock := apitest.Serve(f, fake)
	f.Setenv(libvirtStateEnv, f.TempDir())
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, argLines string, xml []byte) {
		args := strings.Split(argLines, "\n")
		if argLines == "" {
			args = nil
		}
		dom, derr := libvirt.ParseDomain(bytes.NewReader(xml))
		// Before a stop: for (up to 8 of) the described MACs a port the
		// domain owns and one another domain owns.
		call, cerr := libvirt.ParseHookArgs(args)
		act := call.Action()
		others := 0
		if cerr == nil && act == libvirt.Remove && derr == nil && dom.Owner() != "" {
			for i, p := range dom.Ports[:min(len(dom.Ports), 8)] {
				mac, vid := []string{p.MAC.String()}, 10
				for k, owner := range []string{dom.Owner(), "someone-else"} {
					if _, err := fake.AddPort(ctx, api.PortSpec{Name: fmt.Sprintf("p%d%c", i, 'a'+k), VLAN: &vid, MACs: &mac, Owner: &owner}); err != nil {
						t.Fatalf("add a port for %s: %v", p.MAC, err)
					}
					others += k
				}
			}
		}
		var out, errb bytes.Buffer
		code := runIO(append([]string{"--socket", sock, "libvirt-hook"}, args...), bytes.NewReader(xml), &out, &errb)
		ports, err := fake.ListPorts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, p := range ports {
				_ = fake.DeletePort(ctx, p.Name)
			}
		}()
		stderr := errb.String()
		switch {
		case code != 0 && code != 1 && code != 2:
			t.Fatalf("exit %d", code)
		case code != 0 && (strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "vswctl: ")):
			t.Fatalf("exit %d with stderr %q: want one line", code, stderr)
		case cerr != nil && code != 2:
			t.Fatalf("arguments %q refused by ParseHookArgs (%v) but exit %d", args, cerr, code)
		case cerr != nil:
			return
		case act == libvirt.Ignore && (code != 0 || out.Len() != 0 || stderr != "" || len(ports) != 0):
			t.Fatalf("ignored call %q: exit %d, stdout %q, stderr %q, %d ports", args, code, out.String(), stderr, len(ports))
		case act == libvirt.Incoming && (code != 0 || out.Len() != 0 || len(ports) != 0):
			t.Fatalf("migrate begin %q: exit %d, stdout %q (libvirt reads it as the domain XML), %d ports", args, code, out.String(), len(ports))
		case code != 0 && call.BestEffort():
			t.Fatalf("%s %s failed (exit %d, %q): libvirt would kill the VM or ignore it", call.Op, call.SubOp, code, stderr)
		}
		if code != 0 || derr != nil || strings.Contains(stderr, "ignored") {
			return
		}
		byName := map[string]api.Port{}
		for _, p := range ports {
			byName[p.Name] = p
		}
		switch act {
		case libvirt.Configure:
			bs, err := dom.Bindings()
			if err != nil {
				t.Fatalf("hook succeeded on a domain whose bindings fail: %v", err)
			}
			for _, b := range bs {
				if p, ok := byName[b.Tap]; !ok || p.Owner != dom.Owner() || len(p.MACs) != 1 || p.MACs[0] != b.Port.MAC.String() {
					t.Fatalf("binding %+v: port %+v (exists %v), want owner %s", b, p, ok, dom.Owner())
				}
			}
		case libvirt.Remove:
			if left := dom.Owned(ports); len(left) != 0 {
				t.Fatalf("ports of the domain left after %s %s: %+v", call.Op, call.SubOp, left)
			}
			n := 0
			for _, p := range ports {
				if p.Owner == dom.Owner() && dom.Owner() != "" {
					t.Fatalf("port %+v of the domain left", p)
				}
				if p.Owner == "someone-else" {
					n++
				}
			}
			if n != others {
				t.Fatalf("%s %s removed %d ports of another owner with the domain's MACs", call.Op, call.SubOp, others-n)
			}
		}
	})
}

// The destination of a live migration, as libvirt runs the hook there:
// "migrate begin" and "prepare begin" print nothing and add nothing; the
// domain's "start begin" adds its ports incoming (a normal start does not); a refusal of
// the pre-association by the bridge removes them and fails the start with
// one line.
func TestHookIncomingMigration(t *testing.T) {
	fake, sock := daemon(t)
	t.Setenv(libvirtStateEnv, t.TempDir())
	ctx := context.Background()
	const uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	xml := hookXML("web1", uuid, [2]string{"vnet1", "52:54:00:00:00:01"})
	migrateXML := hookXML("web1", uuid, [2]string{"", "52:54:00:00:00:01"}) // no taps yet
	if r := hook(t, sock, migrateXML, "web1", "migrate", "begin", "-"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("migrate begin: %+v", r)
	}
	if ps, _ := fake.ListPorts(ctx); len(ps) != 0 {
		t.Fatalf("migrate begin added %+v", ps)
	}
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	r := hook(t, sock, xml, "web1", "start", "begin", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "migration incoming") {
		t.Fatalf("start begin: %+v", r)
	}
	if p, err := fake.GetPort(ctx, "vnet1"); err != nil || p.Migration != "incoming" || p.Owner != uuid {
		t.Fatalf("port %+v, %v", p, err)
	}
	// The note was used up: the next start is a plain one.
	hook(t, sock, xml, "web1", "stopped", "end", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
	if p, _ := fake.GetPort(ctx, "vnet1"); p.Migration != "" {
		t.Errorf("a plain start added %+v", p)
	}
	hook(t, sock, xml, "web1", "stopped", "end", "-").expect(t, 0, "")

	// The bridge refuses: the start fails, the port is gone.
	fake.VSIsV = []api.VSI{{Port: "vnet1", UUID: "5f0c5a5e-0000-5000-8000-000000000001", State: "failed", Reason: "insufficient resources"}}
	hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 1,
		"vswctl: domain web1: port vnet1: the bridge refused to pre-associate VSI 5f0c5a5e-0000-5000-8000-000000000001: insufficient resources")
	if ps, _ := fake.ListPorts(ctx); len(ps) != 0 {
		t.Errorf("ports left after a refused pre-association: %+v", ps)
	}
	// A VSI waiting for an EVB bridge (none there) is nothing to wait for;
	// a pre-associated one is the answer.
	for _, state := range []string{"waiting", "preassociated"} {
		fake.VSIsV = []api.VSI{{Port: "vnet1", State: state}}
		hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
		hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
		if r := hook(t, sock, xml, "web1", "start", "begin", "-"); r.code != 0 {
			t.Errorf("%s: %+v", state, r)
		}
		_ = fake.DeletePort(ctx, "vnet1")
	}
	// An aborted incoming migration (no start) leaves no note behind once
	// the domain stops.
	hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
	hook(t, sock, migrateXML, "web1", "release", "end", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
	if p, _ := fake.GetPort(ctx, "vnet1"); p.Migration != "" {
		t.Errorf("start after an aborted migration: %+v", p)
	}
	// A bad XML at migrate begin does not fail the migration and prints
	// nothing on stdout.
	if r := hook(t, sock, "<domain", "web1", "migrate", "begin", "-"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "ignored") {
		t.Errorf("migrate begin with bad XML: %+v", r)
	}
}

// The source of a live migration: the "stopped end" that ends it (libvirt's
// status file says the outgoing migration is confirmed, or EXTRA
// "migrated") turns each port outgoing before deleting it; a plain stop
// deletes it only.
func TestHookOutgoingMigration(t *testing.T) {
	fake, sock := daemon(t)
	state := t.TempDir()
	t.Setenv(libvirtStateEnv, state)
	ctx := context.Background()
	const uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	xml := hookXML("web1", uuid, [2]string{"vnet1", "52:54:00:00:00:01"})
	outgoing := func(args ...string) bool {
		t.Helper()
		hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
		before := fake.Calls["UpdatePort"]
		r := hook(t, sock, xml, args...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		if ps, _ := fake.ListPorts(ctx); len(ps) != 0 {
			t.Fatalf("%v left %+v", args, ps)
		}
		return fake.Calls["UpdatePort"] > before
	}
	if outgoing("web1", "stopped", "end", "-") {
		t.Error("a plain stop made the port outgoing")
	}
	status := `<domstatus state='paused' reason='migration'><job type='none' async='migration out' phase='confirm3'/><domain/></domstatus>`
	if err := os.WriteFile(filepath.Join(state, "web1.xml"), []byte(status), 0o600); err != nil {
		t.Fatal(err)
	}
	if !outgoing("web1", "stopped", "end", "-") {
		t.Error("the stop ending a migration (status file) did not make the port outgoing")
	}
	_ = os.Remove(filepath.Join(state, "web1.xml"))
	if !outgoing("web1", "stopped", "end", "migrated") {
		t.Error(`"stopped end migrated" did not make the port outgoing`)
	}
	if outgoing("web1", "release", "end", "-") {
		t.Error("release end made the port outgoing")
	}
}

// libvirt runs "migrate begin" on the destination for an offline
// migration too (virsh migrate --offline --persistent: qemuMigrationDstPrepareAny
// calls the hook, then `if (flags & VIR_MIGRATE_OFFLINE) goto done;`), and
// for an incoming migration that fails before its QEMU starts (cookie,
// storage pre-creation, job start): no "prepare begin", "start begin",
// "stopped end" or "release end" follows. The operator's later plain
// `virsh start` of the migrated definition used to take the note (it
// lasted 10 min) and add the port incoming: PRE-ASSOC, the start waiting
// for the bridge, and the guest's first frame associating with the M bit
// a VM that never migrated live. (Review rev10, 9d57384.)
func TestHookOfflineMigrationNoteNotTakenByLaterStart(t *testing.T) {
	fake, sock := daemon(t)
	t.Setenv(libvirtStateEnv, t.TempDir())
	ctx := context.Background()
	const uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	xml := hookXML("web1", uuid, [2]string{"vnet1", "52:54:00:00:00:01"})
	migrateXML := hookXML("web1", uuid, [2]string{"", "52:54:00:00:00:01"})
	// virsh migrate --offline --persistent web1 qemu+ssh://dst/system
	hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
	// two minutes later, on dst: virsh start web1
	note := filepath.Join(filepath.Dir(sock), "libvirt-incoming", uuid)
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(note, old, old); err != nil {
		t.Fatalf("the note of migrate begin: %v", err)
	}
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
	if p, err := fake.GetPort(ctx, "vnet1"); err != nil || p.Migration != "" {
		t.Errorf("plain start after an offline migration added %+v (%v); want a plain port, associated at once", p, err)
	}
	if _, err := os.Stat(note); err == nil {
		t.Error("the expired note is left after the start")
	}
}

// A plain start right after an offline migration (a script: migrate
// --offline, then start) comes within the note's life and adds the port
// incoming; at "started begin" libvirt's status file says whether the
// domain is migrating in (libvirt 9.0: async 'migration in', phase
// 'prepare'; there is no status file yet at "start begin"). A plain start
// has its port re-added plainly; a real migration, or no status to read,
// leaves it incoming.
func TestHookStartedBeginConfirmsIncoming(t *testing.T) {
	fake, sock := daemon(t)
	state := t.TempDir()
	t.Setenv(libvirtStateEnv, state)
	ctx := context.Background()
	const uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	xml := hookXML("web1", uuid, [2]string{"vnet1", "52:54:00:00:00:01"})
	migrateXML := hookXML("web1", uuid, [2]string{"", "52:54:00:00:00:01"})
	statusFile := filepath.Join(state, "web1.xml")
	setStatus := func(s string) {
		t.Helper()
		_ = os.Remove(statusFile)
		if s != "" {
			if err := os.WriteFile(statusFile, []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name, status, stdout, want string
	}{
		{"migrating in", `<domstatus state='paused' reason='starting up' pid='7'><job type='none' async='migration in' phase='prepare' flags='0x1'/><domain/></domstatus>`, "", "incoming"},
		{"no status file", "", "", "incoming"},
		{"plain start", `<domstatus state='paused' reason='starting up' pid='7'><domain/></domstatus>`, "not migrating in", ""},
	} {
		hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
		hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
		hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
		if p, _ := fake.GetPort(ctx, "vnet1"); p.Migration != "incoming" {
			t.Fatalf("%s: start begin within the note's life added %+v", tc.name, p)
		}
		setStatus(tc.status)
		r := hook(t, sock, xml, "web1", "started", "begin", "-")
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, tc.stdout) || tc.stdout == "" && r.stdout != "" {
			t.Errorf("%s: started begin: %+v", tc.name, r)
		}
		p, err := fake.GetPort(ctx, "vnet1")
		if err != nil || p.Migration != tc.want || p.Owner != uuid || p.VLAN != 100 {
			t.Errorf("%s: after started begin: %+v, %v; want migration %q", tc.name, p, err, tc.want)
		}
		hook(t, sock, xml, "web1", "stopped", "end", "-").expect(t, 0, "")
	}
	// A port not added incoming is left alone whatever the status says;
	// a damaged status file is reported, the port stays.
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
	before := fake.Calls["AddPort"]
	if r := hook(t, sock, xml, "web1", "started", "begin", "-"); r.code != 0 || r.stdout != "" || fake.Calls["AddPort"] != before {
		t.Errorf("started begin of a plain start: %+v, %d adds", r, fake.Calls["AddPort"]-before)
	}
	hook(t, sock, xml, "web1", "stopped", "end", "-").expect(t, 0, "")
	hook(t, sock, migrateXML, "web1", "migrate", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "prepare", "begin", "-").expect(t, 0, "")
	hook(t, sock, xml, "web1", "start", "begin", "-").expect(t, 0, "")
	setStatus("<domstatus")
	if r := hook(t, sock, xml, "web1", "started", "begin", "-"); r.code != 0 || !strings.Contains(r.stderr, "status of domain web1") {
		t.Errorf("started begin with a damaged status: %+v", r)
	}
	if p, _ := fake.GetPort(ctx, "vnet1"); p.Migration != "incoming" {
		t.Errorf("a damaged status demoted the port: %+v", p)
	}
}

// At reconnect the running VM's port is compared with everything the
// description covers (Binding.Describes): a trunk or a VSI identity that
// differs is reported (it used to be compared on VLAN, PCP, S-VID, native
// VLAN, MAC and owner only), and the port is left as it is.
func TestHookReconnectReportsEveryDifference(t *testing.T) {
	fake, sock := daemon(t)
	ctx := context.Background()
	const uuid = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
	dom := func(attrs string) string {
		return `<domain type='kvm'><name>web1</name><uuid>` + uuid + `</uuid><metadata><vsw:ports xmlns:vsw="urn:vswitch:libvirt:1">` +
			`<vsw:port mac="52:54:00:00:00:01" ` + attrs + `/></vsw:ports></metadata><devices>` +
			`<interface type='ethernet'><mac address='52:54:00:00:00:01'/><target dev='vnet1'/></interface></devices></domain>`
	}
	const base = `trunk="10,20" vsi-type="5" vsi-type-version="1" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`
	hook(t, sock, dom(base), "web1", "start", "begin", "-").expect(t, 0, "")
	want, err := fake.GetPort(ctx, "vnet1")
	if err != nil {
		t.Fatal(err)
	}
	if r := hook(t, sock, dom(base), "web1", "reconnect", "begin", "-"); r.code != 0 || r.stderr != "" {
		t.Errorf("reconnect of the described port: %+v", r)
	}
	for _, attrs := range []string{
		`trunk="10,30" vsi-type="5" vsi-type-version="1" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`,
		`trunk="10,20" native-vlan="10" vsi-type="5" vsi-type-version="1" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`,
		`trunk="10,20" vsi-type="6" vsi-type-version="1" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`,
		`trunk="10,20" vsi-type="5" vsi-type-version="2" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`,
		`trunk="10,20" vsi-type="5" vsi-type-version="1" vsi-manager="4" instance-id="5f0c5a5e-0000-5000-8000-000000000001"`,
		`trunk="10,20" vsi-type="5" vsi-type-version="1" vsi-manager="3" instance-id="5f0c5a5e-0000-5000-8000-000000000002"`,
	} {
		r := hook(t, sock, dom(attrs), "web1", "reconnect", "begin", "-")
		if r.code != 0 || !strings.Contains(r.stderr, "port vnet1 differs from the domain's description") {
			t.Errorf("reconnect with %s: %+v; want the difference reported", attrs, r)
		}
		if p, _ := fake.GetPort(ctx, "vnet1"); !slices.Equal(p.Trunk, want.Trunk) || p.VSIType != want.VSIType || p.InstanceID != want.InstanceID {
			t.Errorf("reconnect with %s changed the port: %+v", attrs, p)
		}
	}
}
