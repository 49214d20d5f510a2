package rxwait

import "testing"

// Steering's mode is 1 while any queue streams, stored where SetMode says
// (and nowhere without one); SetMode stores the current mode at once.
func TestSteering(t *testing.T) {
	var s Steering
	s.Note(true) // no mode word yet: counted only
	var mode uint32
	s.SetMode(&mode)
	if mode != 1 {
		t.Fatalf("SetMode with a queue streaming stored %d, want 1", mode)
	}
	s.Note(true)
	s.Note(false)
	if mode != 1 || s.Streaming() != 1 {
		t.Fatalf("one of two streaming queues stopped: mode %d, streaming %d; want 1, 1", mode, s.Streaming())
	}
	s.Note(false)
	if mode != 0 || s.Streaming() != 0 {
		t.Fatalf("no queue streaming: mode %d, streaming %d; want 0, 0", mode, s.Streaming())
	}
	s.SetMode(nil)
	s.Note(true)
	if mode != 0 {
		t.Errorf("mode word written after SetMode(nil): %d", mode)
	}
}
