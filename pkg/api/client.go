package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// DefaultSocket is where vswitchd listens unless told otherwise.
const DefaultSocket = "/run/vswitchd/vswitchd.sock"

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = "VSWITCHD_SOCKET"

// SocketFromEnv returns $VSWITCHD_SOCKET if set, else DefaultSocket.
func SocketFromEnv() string {
	if s := os.Getenv(SocketEnv); s != "" {
		return s
	}
	return DefaultSocket
}

// Client talks to vswitchd over its Unix socket. It is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
}

// dialError marks a failure to connect, as opposed to a failure mid-request.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// NewClient returns a client for the daemon listening on socketPath.
func NewClient(socketPath string) *Client {
	d := net.Dialer{Timeout: 2 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socketPath, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// Socket is the path the client connects to.
func (c *Client) Socket() string { return c.socket }

// Close drops idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends one request: in (if non-nil) is encoded as the JSON body, and a
// successful answer is decoded into out (if non-nil; a *json.RawMessage gets
// the exact bytes). API errors come back as *ServiceError, connection
// failures as *UnreachableError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vswitchd"+path, body)
	if err != nil {
		return fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		var de *dialError
		if errors.As(err, &de) {
			return &UnreachableError{Socket: c.socket, Err: de.err}
		}
		return fmt.Errorf("%s %s on vswitchd at %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer to %s %s from vswitchd at %s: %w", method, path, c.socket, err)
	}
	if resp.StatusCode >= 300 {
		return c.answerError(resp, data, method, path)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer to %s %s from vswitchd at %s: %w", method, path, c.socket, err)
	}
	return nil
}

// answerError is the error of an answer that is not a success: the
// *ServiceError of its JSON error body, or one that quotes what came.
func (c *Client) answerError(resp *http.Response, data []byte, method, path string) error {
	var e Error
	if json.Unmarshal(data, &e) == nil && e.Code != "" {
		return &ServiceError{Code: e.Code, Msg: oneLine(e.Message)}
	}
	return &ServiceError{Code: CodeInternal, Msg: fmt.Sprintf("vswitchd at %s answered %s to %s %s: %s",
		c.socket, resp.Status, method, path, oneLine(truncate(string(data), 200)))}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func portPath(name string) string { return "/v1/ports/" + url.PathEscape(name) }

// FDBPath is the request path of FDB(vlan).
func FDBPath(vlan int) string {
	if vlan == 0 {
		return "/v1/fdb"
	}
	return "/v1/fdb?vlan=" + strconv.Itoa(vlan)
}

// PortPath is the request path of one port.
func PortPath(name string) string { return portPath(name) }

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &v)
	return v, err
}

// ListPorts is GET /v1/ports.
func (c *Client) ListPorts(ctx context.Context) ([]Port, error) {
	var v []Port
	err := c.Do(ctx, http.MethodGet, "/v1/ports", nil, &v)
	return v, err
}

// GetPort is GET /v1/ports/{name}.
func (c *Client) GetPort(ctx context.Context, name string) (Port, error) {
	var v Port
	err := c.Do(ctx, http.MethodGet, portPath(name), nil, &v)
	return v, err
}

// AddPort is POST /v1/ports.
func (c *Client) AddPort(ctx context.Context, spec PortSpec) (Port, error) {
	var v Port
	err := c.Do(ctx, http.MethodPost, "/v1/ports", spec, &v)
	return v, err
}

// UpdatePort is PATCH /v1/ports/{name}.
func (c *Client) UpdatePort(ctx context.Context, name string, spec PortSpec) (Port, error) {
	var v Port
	err := c.Do(ctx, http.MethodPatch, portPath(name), spec, &v)
	return v, err
}

// DeletePort is DELETE /v1/ports/{name}.
func (c *Client) DeletePort(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, portPath(name), nil, nil)
}

// FDB is GET /v1/fdb (vlan 0 = every VLAN).
func (c *Client) FDB(ctx context.Context, vlan int) ([]FDBEntry, error) {
	var v []FDBEntry
	err := c.Do(ctx, http.MethodGet, FDBPath(vlan), nil, &v)
	return v, err
}

// Stats is GET /v1/stats.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var v Stats
	err := c.Do(ctx, http.MethodGet, "/v1/stats", nil, &v)
	return v, err
}

// VSIs is GET /v1/vsis.
func (c *Client) VSIs(ctx context.Context) ([]VSI, error) {
	var v []VSI
	err := c.Do(ctx, http.MethodGet, "/v1/vsis", nil, &v)
	return v, err
}

// Client implements Service, so code can run against the daemon or in-process.
var _ Service = (*Client)(nil)
