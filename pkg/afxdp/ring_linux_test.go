//go:build linux

package afxdp

import (
	"sync/atomic"
	"testing"
)

// peek sees entries the consumer has not taken, without taking them.
func TestRingPeek(t *testing.T) {
	var prod, cons, flags uint32
	r := ringHead{producer: &prod, consumer: &cons, flags: &flags, mask: 3, size: 4}
	if r.peek() {
		t.Fatal("empty ring: peek true")
	}
	atomic.StoreUint32(&prod, 2)
	if !r.peek() {
		t.Fatal("two entries posted: peek false")
	}
	if n := r.consAvail(1); n != 1 {
		t.Fatalf("consAvail(1) = %d", n)
	}
	r.consRelease(1)
	if !r.peek() {
		t.Fatal("one entry left (cached): peek false")
	}
	r.consRelease(r.consAvail(4))
	if r.peek() || cons != 2 {
		t.Fatalf("all taken: peek %v, consumer %d", r.peek(), cons)
	}
}
