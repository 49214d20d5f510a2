package events

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// callTimeout bounds each call to libvirtd: a libvirtd that stops
// answering must not hold the follower (the connection is dropped and
// made again).
const callTimeout = 30 * time.Second

// ParseURI checks a --libvirt value: a libvirt URI (qemu:///system,
// qemu:///system?socket=PATH, qemu+tcp://host/system, ...) or the path of
// libvirtd's socket (/run/libvirt/libvirt-sock), which means
// qemu:///system on that socket.
func ParseURI(s string) (*url.URL, error) {
	if strings.HasPrefix(s, "/") {
		return &url.URL{Scheme: "qemu", Path: "/system", RawQuery: url.Values{"socket": {s}}.Encode()}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", s, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("libvirt URI %q: want DRIVER[+TRANSPORT]://[HOST]/PATH (qemu:///system) or the path of libvirtd's socket", s)
	}
	return u, nil
}

// Dialer returns a Config.Dial that connects to libvirtd at uri (checked
// by ParseURI) with go-libvirt, libvirt's RPC protocol in pure Go, and
// subscribes to the domain events the follower needs: lifecycle, device
// added, device removed, metadata change.
func Dialer(uri *url.URL) func(ctx context.Context) (Conn, error) {
	return func(ctx context.Context) (Conn, error) { return dial(ctx, uri) }
}

// remote is a Conn to libvirtd over go-libvirt.
type remote struct {
	l      *golibvirt.Libvirt
	events chan Event
	cancel context.CancelFunc
	once   sync.Once
}

// subscribed are the domain events the follower reads.
var subscribed = []golibvirt.DomainEventID{
	golibvirt.DomainEventIDLifecycle,
	golibvirt.DomainEventIDDeviceAdded,
	golibvirt.DomainEventIDDeviceRemoved,
	golibvirt.DomainEventIDMetadataChange,
}

func dial(ctx context.Context, uri *url.URL) (Conn, error) {
	type result struct {
		l   *golibvirt.Libvirt
		err error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := golibvirt.ConnectToURI(uri)
		ch <- result{l, err}
	}()
	var l *golibvirt.Libvirt
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		l = r.l
	case <-ctx.Done():
		go func() { // the connection may yet succeed: close it then
			if r := <-ch; r.l != nil {
				_ = r.l.Disconnect()
			}
		}()
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
	sctx, scancel := context.WithCancel(context.Background())
	c := &remote{l: l, events: make(chan Event, 64), cancel: scancel}
	var wg sync.WaitGroup
	for _, id := range subscribed {
		evs, err := c.call(ctx, func() (any, error) { return l.SubscribeEvents(sctx, id, nil) })
		if err != nil {
			scancel()
			c.disconnect()
			return nil, fmt.Errorf("subscribe to domain events %d: %w", id, err)
		}
		wg.Add(1)
		go func(in <-chan any) {
			defer wg.Done()
			for raw := range in {
				ev, ok := translate(raw)
				if !ok {
					continue
				}
				select {
				case c.events <- ev:
				case <-sctx.Done():
					// Drain until go-libvirt closes it: its sender must
					// not block.
					for range in {
					}
					return
				}
			}
		}(evs.(<-chan any))
	}
	go func() {
		select {
		case <-l.Disconnected(): // libvirtd went away: the streams close
		case <-sctx.Done():
		}
		scancel()
		wg.Wait()
		close(c.events)
	}()
	return c, nil
}

// translate turns a go-libvirt event into an Event; false: not one the
// follower reads (lifecycle events other than started, stopped and
// resumed by a migration,
// metadata other than elements).
func translate(raw any) (Event, bool) {
	dom := func(d golibvirt.Domain) Event { return Event{UUID: FormatUUID(d.UUID), Name: d.Name} }
	switch e := raw.(type) {
	case *golibvirt.DomainEventCallbackLifecycleMsg:
		ev := dom(e.Msg.Dom)
		switch golibvirt.DomainEventType(e.Msg.Event) {
		case golibvirt.DomainEventStarted:
			ev.Kind = Started
			ev.Migrated = golibvirt.DomainEventStartedDetailType(e.Msg.Detail) == golibvirt.DomainEventStartedMigrated
		case golibvirt.DomainEventStopped:
			ev.Kind = Stopped
			ev.Migrated = golibvirt.DomainEventStoppedDetailType(e.Msg.Detail) == golibvirt.DomainEventStoppedMigrated
		case golibvirt.DomainEventResumed:
			// On the destination: RESUMED_MIGRATED when the migration
			// ends and the VM runs here, RESUMED_POSTCOPY when it runs
			// here while post-copy fetches the rest of its memory. A
			// plain resume (virsh resume) is no concern of the follower.
			switch golibvirt.DomainEventResumedDetailType(e.Msg.Detail) {
			case golibvirt.DomainEventResumedMigrated, golibvirt.DomainEventResumedPostcopy:
				ev.Kind, ev.Migrated = Resumed, true
			default:
				return Event{}, false
			}
		default:
			return Event{}, false
		}
		return ev, true
	case *golibvirt.DomainEventCallbackDeviceAddedMsg:
		ev := dom(e.Dom)
		ev.Kind, ev.Device = DeviceAdded, e.DevAlias
		return ev, true
	case *golibvirt.DomainEventCallbackDeviceRemovedMsg:
		ev := dom(e.Msg.Dom)
		ev.Kind, ev.Device = DeviceRemoved, e.Msg.DevAlias
		return ev, true
	case *golibvirt.DomainEventCallbackMetadataChangeMsg:
		if golibvirt.DomainMetadataType(e.Type) != golibvirt.DomainMetadataElement {
			return Event{}, false // <title> or <description>
		}
		ev := dom(e.Dom)
		ev.Kind = MetadataChanged
		if len(e.Nsuri) > 0 {
			ev.Namespace = e.Nsuri[0]
		}
		return ev, true
	}
	return Event{}, false
}

func (c *remote) Events() <-chan Event { return c.events }

// call runs fn, one request to libvirtd, within callTimeout; past it the
// connection is dropped (which ends the request and Events).
func (c *remote) call(ctx context.Context, fn func() (any, error)) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		c.disconnect()
		return nil, fmt.Errorf("libvirtd: %w", ctx.Err())
	}
}

func (c *remote) Running(ctx context.Context) ([]Domain, error) {
	v, err := c.call(ctx, func() (any, error) {
		ds, _, err := c.l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
		return ds, err
	})
	if err != nil {
		return nil, err
	}
	var out []Domain
	for _, d := range v.([]golibvirt.Domain) {
		x, err := c.xml(ctx, d)
		if golibvirt.IsNotFound(err) {
			continue // stopped (and undefined) since the list
		}
		if err != nil {
			return nil, fmt.Errorf("domain %s: %w", d.Name, err)
		}
		out = append(out, Domain{UUID: FormatUUID(d.UUID), Name: d.Name, Active: true, XML: x})
	}
	return out, nil
}

func (c *remote) xml(ctx context.Context, d golibvirt.Domain) ([]byte, error) {
	v, err := c.call(ctx, func() (any, error) { return c.l.DomainGetXMLDesc(d, 0) }) // 0: the live XML
	if err != nil {
		return nil, err
	}
	return []byte(v.(string)), nil
}

func (c *remote) Domain(ctx context.Context, uuid string) (Domain, error) {
	u, err := ParseUUID(uuid)
	if err != nil {
		return Domain{}, err
	}
	out := Domain{UUID: FormatUUID(u)}
	v, err := c.call(ctx, func() (any, error) { return c.l.DomainLookupByUUID(golibvirt.UUID(u)) })
	if golibvirt.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	d := v.(golibvirt.Domain)
	out.Name = d.Name
	v, err = c.call(ctx, func() (any, error) { return c.l.DomainIsActive(d) })
	if golibvirt.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if v.(int32) == 0 {
		return out, nil
	}
	x, err := c.xml(ctx, d)
	if golibvirt.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	// Stopped between the two calls: the XML is then the inactive one,
	// which the next event (stopped) corrects.
	out.Active, out.XML = true, x
	return out, nil
}

// Close ends the subscriptions and the connection.
func (c *remote) Close() error {
	c.cancel()
	return c.disconnect()
}

// disconnect closes the connection once, waiting at most a few seconds
// for libvirtd's goodbye.
func (c *remote) disconnect() error {
	var err error
	c.once.Do(func() {
		done := make(chan error, 1)
		go func() { done <- c.l.Disconnect() }()
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			err = errors.New("libvirtd: no answer to close within 5 s")
		}
	})
	return err
}
