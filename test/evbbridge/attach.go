package evbbridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vswitch/vswitch/test/topo"
)

// Port is a Bridge running on an interface of a network namespace.
type Port struct {
	*Bridge
	conn   *topo.PacketConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Attach runs a bridge on ifname in ns (the switch side of a hypervisor's
// uplink): an AF_PACKET socket takes the frames arriving there (tags as
// they were on the wire) and sends the bridge's. cfg.MAC defaults to the
// interface's address and cfg.PortID to its name. Stop it (t.Cleanup) when
// done; it also stops when the namespace's Topo cleans up.
func Attach(ns *topo.NS, ifname string, cfg Config) (*Port, error) {
	if len(cfg.MAC) == 0 {
		mac, err := ns.MAC(ifname)
		if err != nil {
			return nil, err
		}
		cfg.MAC = mac
	}
	if cfg.PortID == "" {
		cfg.PortID = ifname
	}
	conn, err := ns.PacketConn(ifname)
	if err != nil {
		return nil, fmt.Errorf("evbbridge on %s: %w", ifname, err)
	}
	b, err := New(cfg, conn.WriteFrame)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Port{Bridge: b, conn: conn, cancel: cancel}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); b.Run(ctx) }()
	go func() { defer p.wg.Done(); p.read(ctx) }()
	return p, nil
}

func (p *Port) read(ctx context.Context) {
	for ctx.Err() == nil {
		f, err := p.conn.ReadFrame(200 * time.Millisecond)
		switch {
		case err == nil:
			p.Handle(f)
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			return // closed
		}
	}
}

// Stop sends the shutdown LLDPDUs and stops the bridge; it returns when
// its goroutines have.
func (p *Port) Stop() {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.conn.Close()
	})
}
