package libvirt

import "fmt"

// HookCall is one invocation of libvirt's qemu hook.
type HookCall struct {
	Domain string
	Op     string // prepare, start, started, stopped, release, migrate, restore, reconnect, attach
	SubOp  string // begin, end, -
	Extra  string
}

// Action is what vswitch does for a hook call.
type Action int

const (
	// Ignore: nothing to do (the hook exits 0).
	Ignore Action = iota
	// Configure the ports of the domain's NICs (taps exist).
	Configure
	// Remove the ports of the domain's NICs. libvirt may have deleted
	// the taps (and their names from the XML) by then: ports are found by
	// their registered MACs.
	Remove
	// Incoming: the domain is migrating to this host ("migrate begin");
	// its ports are added at its "start begin", pre-associated. Nothing
	// may be printed: libvirt reads the hook's output as the domain XML.
	Incoming
	// Prepare: the domain is about to start ("prepare begin"); an
	// incoming migration's note moves on to its "start begin"
	// (IncomingMarks.Prepare). Nothing is printed.
	Prepare
	// Confirm: the domain's QEMU runs, its CPUs not yet ("started
	// begin"); ports it added incoming are re-added plainly unless
	// libvirt's status says it is migrating in (MigratingIn).
	Confirm
)

// ParseHookArgs reads the hook's arguments (DOMAIN OPERATION SUBOP [EXTRA]).
func ParseHookArgs(args []string) (HookCall, error) {
	if len(args) < 3 {
		return HookCall{}, fmt.Errorf("libvirt-hook: want DOMAIN OPERATION SUBOP [EXTRA], got %d arguments", len(args))
	}
	c := HookCall{Domain: args[0], Op: args[1], SubOp: args[2]}
	if len(args) > 3 {
		c.Extra = args[3]
	}
	return c, nil
}

// Action says what to do: configure the ports when libvirt has created
// the taps and QEMU is about to run ("start begin", and "reconnect begin"
// when libvirtd restarts with the VM running), remove them when the VM has
// stopped ("stopped end", and "release end" again, which also follows a
// failed start), note an incoming migration ("migrate begin"), move the
// note on ("prepare begin") and confirm it ("started begin"); everything
// else is ignored.
func (c HookCall) Action() Action {
	switch {
	case c.Op == "start" && c.SubOp == "begin", c.Op == "reconnect" && c.SubOp == "begin":
		return Configure
	case c.Op == "stopped" && c.SubOp == "end", c.Op == "release" && c.SubOp == "end":
		return Remove
	case c.Op == "migrate" && c.SubOp == "begin":
		return Incoming
	case c.Op == "prepare" && c.SubOp == "begin":
		return Prepare
	case c.Op == "started" && c.SubOp == "begin":
		return Confirm
	}
	return Ignore
}

// Migrated reports a stop that ends an outgoing migration, said by the
// EXTRA argument "migrated". libvirt 9.0 passes "-" there (its
// qemuProcessStop calls the hook without an extra argument); the hook
// also reads libvirt's status file (MigratedOut).
func (c HookCall) Migrated() bool {
	return (c.Op == "stopped" || c.Op == "release") && c.SubOp == "end" && c.Extra == "migrated"
}

// BestEffort reports whether a failure must not fail the hook: libvirt
// kills a running VM when the "reconnect" hook fails, ignores the exit
// status of "stopped" and "release", and would cancel a migration over
// vswitch's own bookkeeping at "migrate".
func (c HookCall) BestEffort() bool { return c.Op != "start" }
