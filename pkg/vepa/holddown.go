package vepa

import (
	"context"
	"log/slog"
	"time"
)

// Hold-down of the bridge's word (flap dampening, as 802.1AB's transmit
// credit limits what a station sends and routing protocols damp a flapping
// route). What the bridge says changes what vswitchd does: reflective
// relay switches the datapath between VEPA and VEB, the timers restart
// VDP's keep-alives, CDCP's grants attach and detach S-channel ports, and
// each logs. A bridge whose answer flips with every LLDPDU (or anyone
// copying its chassis ID, port ID and MAC) would make each frame do all of
// that. So each kind of change (relay, timers, CDCP grants) spends a
// change credit, the transmit credit's rule (txCredit): at most
// txCreditMax changes at once, then one a txCreditTick; a change that
// finds no credit waits, and when the credit is back the bridge's latest
// word is applied, whatever came between (the latest state wins). A bridge
// that changes its mind now and then is followed at once, as before.
//
//	change, credit left      applied at once (OnChange, OnTimers)
//	change, no credit        held (pending): applied when a credit is back,
//	                         unless undone meanwhile
//	change while one is held the held one is suppressed, this one held
//	change back to what is   the held one and this one are suppressed:
//	applied while held       nothing to apply
//
// Changes counts the bridge's changes, Suppressed those never applied;
// Changes = applied + Suppressed (+ 1 while one is held). An episode of
// flapping starts with the first change held: logged once at warn, then
// every flapSummary while it lasts, and at info when the credit is full
// again (no change for txCreditMax ticks); meanwhile each applied change
// is logged at debug, by the stations and by the daemon (Flapping), not
// at info or warn.
const flapSummary = time.Minute

// HoldDown is what the hold-down did with one kind of change.
type HoldDown struct {
	// Changes counts the changes of the bridge's word of this kind;
	// Suppressed those never applied (overtaken within the hold, or
	// undone).
	Changes, Suppressed uint64
	// Flapping is set while an episode lasts: changes are being held.
	Flapping bool
}

// holdDown is the hold-down of one kind of change; the caller holds its
// station's lock.
type holdDown struct {
	what    string // for the log: "reflective relay", "EVB timers", "CDCP grants"
	log     *slog.Logger
	credit  txCredit
	pending bool // a change waits for credit
	HoldDown
	episode     struct{ changes, suppressed uint64 } // since the episode started
	lastSummary time.Time
}

// change records that the bridge's latest word changed at now; undo says
// it is back to what is applied. It reports whether the change is to be
// applied now (the caller applies it); otherwise it is held (tick applies
// it) or there is nothing to apply.
func (h *holdDown) change(now time.Time, undo bool) bool {
	h.Changes++
	if h.Flapping {
		h.episode.changes++
	}
	if h.pending {
		h.pending = false
		h.suppress(1) // overtaken
	}
	if undo {
		h.suppress(1) // nothing to apply
		return false
	}
	if h.credit.wait(now) == 0 {
		h.credit.take(now)
		return true
	}
	h.pending = true
	if !h.Flapping {
		h.Flapping, h.lastSummary = true, now
		h.episode.changes, h.episode.suppressed = 1, 0
		h.log.Warn("the bridge's "+h.what+" changes faster than vswitchd follows: applying at most one change a second, the latest wins",
			"changes", h.Changes, "suppressed", h.Suppressed)
	}
	return false
}

func (h *holdDown) suppress(n uint64) {
	h.Suppressed += n
	if h.Flapping {
		h.episode.suppressed += n
	}
}

// tick does what is due at now: it reports whether the held change is to
// be applied now (the caller applies it), logs the episode, and returns
// when it wants to be called again (zero: not needed).
func (h *holdDown) tick(now time.Time) (apply bool, next time.Time) {
	if h.pending && h.credit.wait(now) == 0 {
		h.credit.take(now)
		h.pending, apply = false, true
	}
	if !h.Flapping {
		return apply, time.Time{}
	}
	if !h.pending && !h.credit.tat.After(now) {
		h.Flapping = false
		h.log.Info("the bridge's "+h.what+" is stable again", "changes", h.episode.changes, "suppressed", h.episode.suppressed,
			"changes_total", h.Changes, "suppressed_total", h.Suppressed)
		return apply, time.Time{}
	}
	if now.Sub(h.lastSummary) >= flapSummary {
		h.lastSummary = now
		h.log.Warn("the bridge's "+h.what+" still flaps", "changes", h.episode.changes, "suppressed", h.episode.suppressed)
	}
	next = h.credit.tat // the credit full again: the episode may end
	if h.pending {
		next = now.Add(h.credit.wait(now))
	}
	return apply, earliest(next, h.lastSummary.Add(flapSummary))
}

// level is the level of the log line of an applied change: info, or
// debug while flapping.
func (h *holdDown) level() slog.Level {
	if h.Flapping {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// logChange logs an applied change at h.level.
func (h *holdDown) logChange(msg string, args ...any) {
	h.log.Log(context.Background(), h.level(), msg, args...)
}

// earliest is the earlier of two times, a zero one counting as none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
