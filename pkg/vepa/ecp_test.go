package vepa

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"
)

// The header bits, written out by hand: version 1, request, subtype 1,
// sequence 0x1234; an ack of it.
func TestECPFrameBytes(t *testing.T) {
	src := [6]byte{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
	f := ECPFrame(src, ECPRequest, ECPSubtypeVDP, 0x1234, []byte{0xde, 0xad})
	want, _ := hex.DecodeString("0180c2000000" + "525400aabbcc" + "8940" + "1001" + "1234" + "dead")
	if len(f) != 60 || !bytes.Equal(f[:len(want)], want) {
		t.Fatalf("request frame\n% x\nwant\n% x (padded to 60)", f, want)
	}
	h, p, err := ParseECP(f)
	if err != nil || h != (ECPHeader{Version: 1, Op: ECPRequest, Subtype: 1, Seq: 0x1234}) || !bytes.HasPrefix(p, []byte{0xde, 0xad}) {
		t.Fatalf("parsed %+v % x %v", h, p, err)
	}
	ack := ECPFrame(src, ECPAck, ECPSubtypeVDP, 0x1234, nil)
	if ack[14] != 0x14 || ack[15] != 0x01 {
		t.Errorf("ack header % x, want 14 01", ack[14:16])
	}
	for _, bad := range []string{"", "0180c2000000525400aabbcc08001001", "0180c2000000525400aabbcc89402001abcd", "0180c2000000525400aabbcc89401c01abcd"} {
		b, _ := hex.DecodeString(bad)
		if _, _, err := ParseECP(b); err == nil {
			t.Errorf("ParseECP(%s) accepted", bad)
		}
	}
}

// link connects two ECP endpoints; drop decides per frame whether it is lost.
type link struct {
	mu   sync.Mutex
	a, b *ECP
	drop func(from string, frame []byte) bool
}

func (l *link) sender(from string) func([]byte) error {
	return func(f []byte) error {
		l.mu.Lock()
		lost := l.drop != nil && l.drop(from, f)
		to := l.b
		if from == "b" {
			to = l.a
		}
		l.mu.Unlock()
		if !lost {
			go to.Handle(append([]byte(nil), f...))
		}
		return nil
	}
}

func newLink(t *testing.T) (*link, chan []byte, chan []byte) {
	t.Helper()
	l := &link{}
	ga, gb := make(chan []byte, 16), make(chan []byte, 16)
	var err error
	l.a, err = NewECP(ECPConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xa}, Peer: [6]byte{2, 0, 0, 0, 0, 0xb}, Send: l.sender("a"), Deliver: func(p []byte) { ga <- append([]byte(nil), p...) }, RTE: 10})
	if err != nil {
		t.Fatal(err)
	}
	l.b, err = NewECP(ECPConfig{MAC: [6]byte{2, 0, 0, 0, 0, 0xb}, Peer: [6]byte{2, 0, 0, 0, 0, 0xa}, Send: l.sender("b"), Deliver: func(p []byte) { gb <- append([]byte(nil), p...) }, RTE: 10})
	if err != nil {
		t.Fatal(err)
	}
	return l, ga, gb
}

func TestECPDeliversOnceDespiteLosses(t *testing.T) {
	l, _, gb := newLink(t)
	// Lose a's first request and b's first ack: a retransmits twice, b
	// acknowledges both copies but delivers one.
	lostReq, lostAck := false, false
	l.drop = func(from string, f []byte) bool {
		h, _, _ := ParseECP(f)
		switch {
		case from == "a" && h.Op == ECPRequest && !lostReq:
			lostReq = true
			return true
		case from == "b" && h.Op == ECPAck && !lostAck:
			lostAck = true
			return true
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.a.Request(ctx, []byte("vdp-1")); err != nil {
		t.Fatal(err)
	}
	if got := <-gb; string(got[:5]) != "vdp-1" {
		t.Fatalf("delivered %q", got)
	}
	select {
	case got := <-gb:
		t.Fatalf("delivered twice: %q", got)
	case <-time.After(50 * time.Millisecond):
	}
	if s := l.a.Stats(); s.Sent != 1 || s.Retransmitted != 2 || s.Acked != 1 {
		t.Errorf("sender stats %+v, want 1 sent, 2 retransmitted, 1 acked", s)
	}
	if s := l.b.Stats(); s.Received != 1 || s.Duplicates != 1 {
		t.Errorf("receiver stats %+v, want 1 received, 1 duplicate", s)
	}
	// The next request has the next sequence number and is delivered.
	if err := l.a.Request(ctx, []byte("vdp-2")); err != nil {
		t.Fatal(err)
	}
	if got := <-gb; string(got[:5]) != "vdp-2" {
		t.Fatalf("second request delivered %q", got)
	}
}

func TestECPGivesUp(t *testing.T) {
	l, _, _ := newLink(t)
	l.drop = func(string, []byte) bool { return true }
	err := l.a.Request(context.Background(), []byte("x"))
	if !errors.Is(err, ErrNoAck) {
		t.Fatalf("err %v, want ErrNoAck", err)
	}
	if s := l.a.Stats(); s.Sent != 1 || s.Retransmitted != 3 || s.Failed != 1 {
		t.Errorf("stats %+v, want 1 + 3 retries, failed", s)
	}
}

func TestECPSequenceSkipsZero(t *testing.T) {
	l, _, gb := newLink(t)
	l.a.seq = 0xffff
	if err := l.a.Request(context.Background(), []byte("wrap")); err != nil {
		t.Fatal(err)
	}
	<-gb
	if l.a.seq != 1 {
		t.Errorf("sequence after 0xffff is %d, want 1", l.a.seq)
	}
}
