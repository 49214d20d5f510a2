package vepa

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timer negotiation (IEEE 802.1Qbg-2012, the EVB TLV of D.2.12 and the
// timers of clauses 41.5.5 and 43). Four parameters ride in the EVB TLV,
// each an exponent of 10 µs (Timer) except R:
//
//	R    ECP retries: a request is sent at most R+1 times      3 bits, 0-7
//	RTE  ECP acknowledgement timer, 10 µs × 2^RTE               5 bits, 0-31
//	RWD  VDP resource wait delay: how long the bridge may take
//	     to answer a request, 10 µs × 2^RWD                     5 bits, 0-31
//	RKA  VDP keep-alive: the station refreshes each VSI every
//	     10 µs × 2^RKA                                          5 bits, 0-31
//
// RWD and RKA each carry a ROL ("remote or local") bit: set, the value in
// the field is the one the sender took from the other side; clear, it is
// the sender's own. Each side uses the larger of its own value and the
// other's (lldpad's common_tlv in lldp_evb22.c does that for all four),
// so neither can make the other refresh or retransmit faster than it is
// configured for. What the station does (Negotiate):
//
//	R, RTE    the larger of the local and the bridge's value
//	RWD, RKA  the larger of the two, except
//	          - the bridge's ROL is set: the bridge says it took the
//	            station's value, so the local value is in use (and a stale
//	            echo of an older local value cannot pin the result);
//	          - the station is configured to follow the bridge ("remote",
//	            its own ROL bit): the bridge's value, whatever it is.
//
// The station advertises its own configured values with ROL clear, and
// with ROL set and the value 0 (RKA: MinRKAInUse, below) for a parameter
// that follows the bridge: a bridge that takes the larger of the two (lldpad) then shows its own
// value, and keeps showing it when it changes. lldpad's station instead
// advertises the values in use (the larger), which pins them at the
// largest either side ever had until one side restarts.
//
// Sanity bounds. The fields allow values no working link needs: RTE 31 is
// an ECP timer of 6 hours per try (with R 7 and a lost acknowledgement VDP
// waits 48 hours behind one request), RKA 0 a keep-alive every 10 µs. The
// larger-of rule keeps a bridge from lowering RTE or RKA below the
// station's, but nothing stops it raising RTE, and a station that follows
// the bridge's RKA (--evb-rka remote) takes its 0. So the values in use are
// clamped (Negotiate, the one home of the rule), whoever proposed them:
//
//	RTE  at most MaxRTEInUse (18: 2.62 s per try, a request given up
//	     within 21 s at R 7); the largest defaults known are HPE/H3C's
//	     fixed RTE 16 (655 ms), Cisco DFA's 14 and lldpad's 8
//	RKA  at least MinRKAInUse (14: 163.84 ms), the smallest keep-alive
//	     exponent HPE/H3C let a bridge configure (14-31); lldpad defaults
//	     to 20
//
// NegotiatedTimers.Clamps names what was clamped. R (at most 7 tries of
// RTE) and RWD (the bridge's resource wait: a small one fails requests
// sooner, which VDP re-sends every second anyway; a large one delays
// nothing, unanswered requests being re-sent every second until it runs
// out) need no bound. What the station advertises respects the bounds too:
// RTE at most 18, and RKA at least 14 (also for a followed RKA, instead of
// 0), so a bridge that takes the larger of the two times VSIs out on the
// keep-alive period the station really uses.

// Timers are timer exponents in use (or proposed): R retries, RTE the ECP
// acknowledgement timer, RWD the VDP resource wait delay, RKA the VDP
// keep-alive.
type Timers struct {
	R, RTE, RWD, RKA uint8
}

// Limits of the parameters, from the EVB TLV's field widths.
const (
	MaxR        = 7
	MaxExponent = 31
)

// The sanity bounds of the timers in use (see the top of this file).
const (
	MaxRTEInUse = 18 // ECP acknowledgement timer at most 10 µs × 2^18 = 2.62 s
	MinRKAInUse = 14 // keep-alive at least 10 µs × 2^14 = 163.84 ms
)

// Timers the station proposes unless told otherwise (lldpad's defaults,
// DefaultLocal).
func (e EVB) Timers() Timers { return Timers{R: e.R, RTE: e.RTE, RWD: e.RWD, RKA: e.RKA} }

// ECPAckTimeout is how long ECP waits for an acknowledgement before it
// sends a request again: 10 µs × 2^RTE (clause 43; no back-off, as lldpad's
// ecp22.c).
func (t Timers) ECPAckTimeout() time.Duration { return Timer(t.RTE) }

// KeepAlive is how often the station refreshes each VSI
// (reinitKeepAlive): 10 µs × 2^RKA.
func (t Timers) KeepAlive() time.Duration { return Timer(t.RKA) }

// ResourceWait is the bridge's resource wait delay: 10 µs × 2^RWD.
func (t Timers) ResourceWait() time.Duration { return Timer(t.RWD) }

// ecpWorst is the longest ECP takes to deliver a request or give up:
// (1 + 2R) acknowledgement times (clause 41.5.5.9 as lldpad's
// vdp22_timeout computes it).
func (t Timers) ecpWorst() time.Duration {
	return time.Duration(1+2*int64(t.R)) * t.ECPAckTimeout()
}

// ResponseWait is how long the station waits for the bridge's answer to a
// request before it counts as unanswered (respWaitDelay, clause 41.5.5.9):
// 1.5 × ((1 + 2R) × ECPAckTimeout + ResourceWait).
func (t Timers) ResponseWait() time.Duration {
	d := t.ecpWorst() + t.ResourceWait()
	return d + d/2
}

// BridgeKeepAliveTimeout is how long a bridge keeps a VSI that is not
// refreshed (toutKeepAlive, clause 41.5.5.9 as lldpad computes it): 1.5 ×
// ((1 + 2R) × ECPAckTimeout + KeepAlive).
func (t Timers) BridgeKeepAliveTimeout() time.Duration {
	d := t.ecpWorst() + t.KeepAlive()
	return d + d/2
}

// Check reports a parameter out of its field's range.
func (t Timers) Check() error {
	if t.R > MaxR {
		return &TimerError{Param: "R", Value: strconv.Itoa(int(t.R))}
	}
	for _, p := range []struct {
		name string
		v    uint8
	}{{"RTE", t.RTE}, {"RWD", t.RWD}, {"RKA", t.RKA}} {
		if p.v > MaxExponent {
			return &TimerError{Param: p.name, Value: strconv.Itoa(int(p.v))}
		}
	}
	return nil
}

// TimerError is a timer parameter that cannot be set.
type TimerError struct {
	Param string // R, RTE, RWD or RKA
	Value string // as given
}

func (e *TimerError) Error() string {
	switch e.Param {
	case "R":
		return fmt.Sprintf("invalid EVB R %q: the ECP retry count is 0-%d", e.Value, MaxR)
	case "RWD", "RKA":
		return fmt.Sprintf("invalid EVB %s %q: an exponent 0-%d (10 µs × 2^%s), or remote to use the bridge's", e.Param, e.Value, MaxExponent, e.Param)
	}
	return fmt.Sprintf("invalid EVB %s %q: an exponent 0-%d (10 µs × 2^%s)", e.Param, e.Value, MaxExponent, e.Param)
}

// Remote is the setting of RWD or RKA that follows the bridge's value
// (ParseTimer).
const Remote = "remote"

// ParseTimer reads one timer setting as an operator writes it (vswitchd's
// --evb-r, --evb-rte, --evb-rwd, --evb-rka): a number in the field's range
// (R 0-7, the exponents 0-31), or, for RWD and RKA, "remote": use the
// bridge's value (the station sets the parameter's ROL bit). It is the one
// home of these rules.
func ParseTimer(param, s string) (v uint8, remote bool, err error) {
	param = strings.ToUpper(param)
	max := MaxExponent
	switch param {
	case "R":
		max = MaxR
	case "RTE":
	case "RWD", "RKA":
		if s == Remote {
			return 0, true, nil
		}
	default:
		return 0, false, fmt.Errorf("EVB timer parameter %q: use R, RTE, RWD or RKA", param)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, false, &TimerError{Param: param, Value: s}
	}
	return uint8(n), false, nil
}

// SetTimer is ParseTimer into the station's local TLV e (R, RTE, RWD, RKA
// and the ROL bits of RWD and RKA).
func (e *EVB) SetTimer(param, s string) error {
	v, remote, err := ParseTimer(param, s)
	if err != nil {
		return err
	}
	switch strings.ToUpper(param) {
	case "R":
		e.R = v
	case "RTE":
		e.RTE = v
	case "RWD":
		e.RWD, e.ROLRWD = v, remote
	case "RKA":
		e.RKA, e.ROLRKA = v, remote
	}
	return nil
}

// Where a value in use comes from (NegotiatedTimers.Sources).
const (
	FromLocal  = "local"  // the station's configured value
	FromBridge = "bridge" // the bridge's
	FromBoth   = "both"   // both sides have that value
)

// NegotiatedTimers are the timers in use and where each comes from.
type NegotiatedTimers struct {
	Timers
	// Source of R, RTE, RWD and RKA: FromLocal, FromBridge or FromBoth.
	RFrom, RTEFrom, RWDFrom, RKAFrom string
	// Unclamped are the values negotiation picked before the sanity
	// bounds (MaxRTEInUse, MinRKAInUse); Timers differs from them where
	// a bound applied (Clamps).
	Unclamped Timers
}

// Clamp is a timer parameter whose negotiated value lay outside the
// sanity bounds: the bound is in use instead.
type Clamp struct {
	Param             string // "RTE" or "RKA"
	Negotiated, InUse uint8
}

// Clamps lists the parameters the sanity bounds changed (nil: none).
func (n NegotiatedTimers) Clamps() []Clamp {
	var out []Clamp
	if n.Unclamped.RTE != n.RTE {
		out = append(out, Clamp{"RTE", n.Unclamped.RTE, n.RTE})
	}
	if n.Unclamped.RKA != n.RKA {
		out = append(out, Clamp{"RKA", n.Unclamped.RKA, n.RKA})
	}
	return out
}

// clamp applies the sanity bounds to the values in n.Timers, keeping
// them in n.Unclamped.
func (n NegotiatedTimers) clamp() NegotiatedTimers {
	n.Unclamped = n.Timers
	n.RTE = min(n.RTE, MaxRTEInUse)
	n.RKA = max(n.RKA, MinRKAInUse)
	return n
}

// Negotiate returns the timers the station uses given its configuration
// (local: R, RTE, RWD, RKA, and ROLRWD/ROLRKA set to follow the bridge)
// and the bridge's EVB TLV (nil: none heard). See the rules at the top of
// this file. A parameter that follows the bridge uses the local value (the
// default, DefaultLocal's) while no bridge is heard. The sanity bounds
// apply last.
func Negotiate(local EVB, bridge *EVB) NegotiatedTimers {
	var n NegotiatedTimers
	if bridge == nil {
		n.Timers = local.Timers()
		if local.ROLRWD {
			n.RWD = DefaultLocal.RWD
		}
		if local.ROLRKA {
			n.RKA = DefaultLocal.RKA
		}
		n.RFrom, n.RTEFrom, n.RWDFrom, n.RKAFrom = FromLocal, FromLocal, FromLocal, FromLocal
		return n.clamp()
	}
	n.R, n.RFrom = larger(local.R, bridge.R)
	n.RTE, n.RTEFrom = larger(local.RTE, bridge.RTE)
	n.RWD, n.RWDFrom = withROL(local.RWD, local.ROLRWD, bridge.RWD, bridge.ROLRWD)
	n.RKA, n.RKAFrom = withROL(local.RKA, local.ROLRKA, bridge.RKA, bridge.ROLRKA)
	return n.clamp()
}

func larger(local, bridge uint8) (uint8, string) {
	switch {
	case local == bridge:
		return local, FromBoth
	case local > bridge:
		return local, FromLocal
	}
	return bridge, FromBridge
}

// withROL is the rule for RWD and RKA: followRemote (the station's ROL)
// takes the bridge's value; the bridge's ROL (it took ours) keeps the
// local one; otherwise the larger.
func withROL(local uint8, followRemote bool, bridge uint8, bridgeROL bool) (uint8, string) {
	switch {
	case followRemote:
		return bridge, FromBridge
	case bridgeROL && local == bridge:
		return local, FromBoth
	case bridgeROL:
		return local, FromLocal
	}
	return larger(local, bridge)
}

// advertised is the station's TLV for its configuration: its own values
// with ROL clear, and 0 with ROL set for a parameter that follows the
// bridge, within the sanity bounds (RTE at most MaxRTEInUse, RKA at least
// MinRKAInUse, a followed one included).
func advertised(local EVB) EVB {
	if local.ROLRWD {
		local.RWD = 0
	}
	if local.ROLRKA {
		local.RKA = 0
	}
	local.RTE = min(local.RTE, MaxRTEInUse)
	local.RKA = max(local.RKA, MinRKAInUse)
	return local
}
