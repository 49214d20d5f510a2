package api

import (
	"net"
	"sync"
	"time"
)

// Limits of every HTTP server vswitchd runs (the API socket and --metrics).
// A client that is slow or silent, or opens connection after connection,
// costs a bounded number of file descriptors for a bounded time: the
// descriptors the datapath needs to attach a new tap are never used up by
// idle API clients.
const (
	// MaxConns is how many connections a listener holds open at once; one
	// more is accepted and closed at once (the client sees a reset and can
	// retry) rather than left in the kernel's backlog.
	MaxConns = 128
	// HeaderTimeout bounds reading a request's headers, BodyTimeout the
	// whole request including its body (at most MaxBodyBytes).
	HeaderTimeout = 5 * time.Second
	BodyTimeout   = 10 * time.Second
	// WriteTimeout bounds writing an answer (a /metrics scrape included).
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection no request arrives on.
	IdleTimeout = 30 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 16 << 10
	// MaxFDBEntries bounds the answer to GET /v1/fdb: a longer list (a
	// registered MAC counts once per VLAN of its port, so a trunk of 4094
	// VLANs with 256 MACs has a million) is refused with
	// CodeTooManyEntries; one VLAN's list (?vlan=N) is short.
	MaxFDBEntries = 1 << 17
)

// limitListener accepts at most max connections at once: a connection
// beyond that is closed as soon as it is accepted.
type limitListener struct {
	net.Listener
	mu   sync.Mutex
	open int
	max  int
}

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, max: max}
}

// Accept returns the next connection within the limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.open >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// limitedConn gives its slot back when closed (once).
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		c.l.mu.Unlock()
	})
	return err
}
