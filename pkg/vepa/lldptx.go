package vepa

import (
	"context"
	"log/slog"
	"time"
)

// The transmit side both LLDP agents of the station share (the EVB
// station's, Station, and the S-VLAN component's, CDCPStation): IEEE
// 802.1AB-2016 9.2 as far as a station needs it.
//
//	fast start  at once, then fastCount more a second apart (txFastInit,
//	            msgFastTx), again after every change (a kick)
//	then        every Interval (msgTxInterval)
//	credit      at most txCreditMax LLDPDUs in a burst, then one a second
//	            (txCredit, refilled by txTick): a peer whose answer flips
//	            with every frame, or anyone imitating it, cannot make the
//	            station send one LLDPDU per frame it receives; a change
//	            waiting for credit goes out as soon as there is one
//	expiry      the peer's information is forgotten when its TTL runs out
//	            (rxInfoAge), not at the next transmission
//	hold-down   a change of the peer's word held back (holddown.go) is
//	            applied as soon as its credit is back
const (
	txCreditMax  = 5           // 802.1AB's default txCreditMax
	txCreditTick = time.Second // a credit comes back every txTick
)

// txCredit is the transmit credit as a virtual schedule: a send is allowed
// when tat (the theoretical time the credit is used up) is at most
// txCreditMax-1 ticks ahead of now.
type txCredit struct{ tat time.Time }

// wait is how long until a send is allowed (0: now).
func (c *txCredit) wait(now time.Time) time.Duration {
	return max(0, c.tat.Add(-(txCreditMax-1)*txCreditTick).Sub(now))
}

// take uses a credit at now (wait said 0).
func (c *txCredit) take(now time.Time) {
	if c.tat.Before(now) {
		c.tat = now
	}
	c.tat = c.tat.Add(txCreditTick)
}

// txLoop runs an agent until ctx ends: send transmits its current
// LLDPDU; tick does what is due at now (forgets the peer whose TTL ran
// out, applies a change the hold-down held: holddown.go) and returns when
// it is next due (zero: nothing pending); kick asks for a transmission now
// (and a new fast start), wake only for a new look at tick's time.
type txLoop struct {
	interval time.Duration
	kick     <-chan struct{}
	wake     <-chan struct{}
	send     func() error
	tick     func(now time.Time) time.Time
	log      *slog.Logger
	what     string // the agent, for the log: "EVB", "CDCP"
}

func (l txLoop) run(ctx context.Context) {
	var credit txCredit
	fast := fastCount
	nextSend := time.Now()
	failing := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		now := time.Now()
		if !now.Before(nextSend) {
			if w := credit.wait(now); w > 0 {
				nextSend = now.Add(w)
			} else {
				credit.take(now)
				if err := l.send(); err != nil {
					if !failing {
						l.log.Warn("cannot send LLDP ("+l.what+") on the uplink; retrying", "err", err)
						failing = true
					}
				} else {
					failing = false
				}
				next := l.interval
				if fast > 0 {
					fast--
					next = fastInterval
				}
				nextSend = now.Add(next)
			}
		}
		wake := earliest(nextSend, l.tick(time.Now()))
		resetTimer(t, max(0, time.Until(wake)))
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
			fast, nextSend = fastCount, time.Now()
		case <-l.wake:
		case <-t.C:
		}
	}
}
