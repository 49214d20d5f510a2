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
// failed start); everything else is ignored.
func (c HookCall) Action() Action {
	switch {
	case c.Op == "start" && c.SubOp == "begin", c.Op == "reconnect" && c.SubOp == "begin":
		return Configure
	case c.Op == "stopped" && c.SubOp == "end", c.Op == "release" && c.SubOp == "end":
		return Remove
	}
	return Ignore
}

// BestEffort reports whether a failure must not fail the hook: libvirt
// kills a running VM when the "reconnect" hook fails, and ignores the exit
// status of "stopped" and "release".
func (c HookCall) BestEffort() bool { return c.Op != "start" }
