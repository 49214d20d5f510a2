package api

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A listener at its connection limit closes the next connection at once,
// and takes new ones again when one of its connections closes.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var server []net.Conn
	for i := 0; i < 2; i++ {
		dial()
		select {
		case c := <-accepted:
			server = append(server, c)
		case <-time.After(2 * time.Second):
			t.Fatalf("connection %d within the limit not accepted", i+1)
		}
	}
	third := dial()
	third.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
		t.Fatalf("third connection: read %v, want it closed by the server", err)
	}
	select {
	case <-accepted:
		t.Fatal("a connection over the limit was handed to the server")
	default:
	}
	server[0].Close()
	server[0].Close() // closing twice frees one slot only
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
	l.mu.Lock()
	open := l.open
	l.mu.Unlock()
	if open != 1 {
		t.Fatalf("%d connections counted open, want 1", open)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}
