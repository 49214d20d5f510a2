package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
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

// TestServeCutsSlowClients runs the real Serve: a client that never
// finishes its headers, one that never finishes its body, and MaxConns
// more that hold connections open on a second listener (as a scraper
// flood on --metrics would) cost nothing but those connections, for a
// bounded time: the slow ones are closed by the server within their
// timeouts, and the API listener keeps answering throughout.
func TestServeCutsSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's body timeout")
	}
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	serve := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go Serve(ctx, l, h, nil)
		return l.Addr().String()
	}
	api, other := serve(), serve()
	dial := func(addr, send string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := 0; i < MaxConns+5; i++ {
		dial(other, "GET /metrics HTTP/1.1\r\nHost: x\r\n") // headers never end
	}
	start := time.Now()
	slowHeader := dial(api, "GET / HTTP/1.1\r\nHost: x\r\n")
	slowBody := dial(api, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	closedWithin := func(name string, c net.Conn, limit time.Duration) {
		t.Helper()
		c.SetReadDeadline(start.Add(limit + 3*time.Second))
		_, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s: still open %v after it connected (limit %v)", name, time.Since(start).Round(time.Millisecond), limit)
		}
	}
	// While the slow ones wait, the API answers.
	resp, err := http.Get("http://" + api + "/")
	if err != nil {
		t.Fatalf("API listener with slow clients on it and a full second listener: %v", err)
	}
	resp.Body.Close()
	closedWithin("unfinished headers", slowHeader, HeaderTimeout)
	closedWithin("unfinished body", slowBody, BodyTimeout)
}
