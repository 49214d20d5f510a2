// Package api is vswitchd's control API: HTTP/JSON over a Unix socket
// (default /run/vswitchd/vswitchd.sock, mode 0660), the server side that
// turns requests into calls on a Service, and a typed Go client.
//
// # Routes
//
//	GET    /v1/status          Status
//	GET    /v1/ports           []Port
//	POST   /v1/ports           PortSpec (name required) -> 201 Port
//	GET    /v1/ports/{name}    Port
//	PATCH  /v1/ports/{name}    PortSpec (nil fields unchanged) -> Port
//	DELETE /v1/ports/{name}    204
//	GET    /v1/fdb?vlan=N      []FDBEntry (no vlan or 0 = all)
//	GET    /v1/stats           Stats
//	GET    /v1/vsis            []VSI
//	GET    /v1/lldp            LLDP (the EVB station: bridge, timers, ECP/VDP counters)
//	GET    /v1/capture?port=IF a capture stream (pcapng or pcap), see Capture
//	GET    /metrics            mounted by the daemon with Server.Handle
//
// # Capture
//
// GET /v1/capture?port=IF[&direction=in|out|both][&count=N][&snaplen=N]
// [&buffer=KiB][&format=pcapng|pcap] streams the frames of a port or of the
// uplink as vswitchd's datapath sees them (a Service that implements
// CaptureService; vswitchd's takes them inside the switch). The answer is
// a capture file written as the frames come (chunked, flushed after each
// batch): pcapng by default, with each frame's direction in its epb_flags,
// or classic pcap. It ends when the count is reached, when the client
// closes its side of the connection (Client.Capture's Stop: vswctl on
// Ctrl-C), when vswitchd ends it (the port was deleted) or shuts down; the
// file then ends with a pcapng Interface Statistics Block, and the HTTP
// trailers Vswitch-Capture-Frames, -Dropped, -Seen and -Ended carry the
// CaptureSummary: frames written, frames lost because the reader did not
// keep up, frames seen, and why vswitchd ended it. A reader that stops
// reading costs only drops: the datapath never waits for it. The server's
// read and write timeouts do not apply to the stream. Refusals are JSON
// errors: invalid_request (the query), invalid_name, not_found (no such
// port or uplink), too_many_captures (HTTP 429: at most 8 run at once).
//
// # Errors
//
// Every failure is a JSON body {"error": "...", "code": "..."}: 400 for the
// invalid_* codes, 404 not_found, 409 already_exists, 405 wrong method, 413
// body over 1 MiB, 415 body not application/json, and 500 only for code
// internal (a Service error that carries no code, or a recovered panic);
// 503 starting from a daemon that does not serve yet (it waits for its
// uplink: NotServing answers for it). A Service reports semantic problems by returning an error CodeOf maps to a
// code: NewError(code, msg); a *port.Error from the port rules (invalid_name,
// invalid_vlan, invalid_pcp, invalid_mac by the field at fault); port.NotFound
// and port.Exists (not_found, already_exists). The message should tell the
// operator what to do, and it is what vswctl prints.
//
// # Ports
//
// PortSpec.Apply is the one place a request becomes a port.Config: it checks
// the fields a spec sets by the rules of package port, applies them (nil
// fields stay as they are; vlan and trunk switch a port between access and
// trunk) and validates the result. The daemon, its test double
// (apitest.Fake), vswctl and the libvirt hook all use it, so a request
// is judged by the same rules on both sides of the socket. NewPort turns a
// port.Config, its state and counters back into the Port object.
//
// Request bodies are decoded strictly: unknown fields, trailing data and
// bodies over 1 MiB are rejected, so a typo in a field name is an error, not
// a silently ignored setting.
//
// # Socket
//
// ListenUnix creates the socket's directory, refuses to start when a live
// daemon already answers on the socket, removes a stale socket left by a dead
// one, and sets mode 0660 so that members of the socket's group (e.g. the
// libvirt hook) can connect.
//
// # Client
//
// Client mirrors Service over the socket. A dial failure is returned as
// *UnreachableError, whose message tells the operator to start vswitchd or
// point --socket / VSWITCHD_SOCKET at it; an API error is returned as
// *ServiceError, so callers can switch on CodeOf(err).
package api
