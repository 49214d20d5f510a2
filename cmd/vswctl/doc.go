// Command vswctl controls vswitchd through its API socket.
//
//	vswctl [--socket PATH] [-o table|json] status
//	vswctl add-port IF --vlan VID [--mac MAC]... [--pcp N] [--svid N] [--flood]
//	vswctl add-port IF --trunk 10,20-30 [--native-vlan VID]
//	vswctl set-port IF [flags] | del-port IF | list-ports | stats [IF] | fdb [--vlan VID]
//	vswctl capture IF -w FILE|- [-c COUNT] [--direction in|out|both] [--format pcapng|pcap] [--local]
//	vswctl libvirt-hook DOMAIN OPERATION SUBOP [EXTRA] (as /etc/libvirt/hooks/qemu; domain XML on stdin)
//	vswctl version [--client] | --version
//
// The socket is --socket, else $VSWITCHD_SOCKET, else /run/vswitchd/vswitchd.sock.
//
// Every value is checked here before the daemon is contacted (VLAN IDs
// 1-4094, PCP 0-7, unicast MACs, interface names), so a typo fails fast with
// a message that says what a valid value looks like. The rules and messages
// are package port's, the daemon's own: add-port checks the whole request
// with api.PortSpec.Apply, set-port each value with PortSpec.Check (what
// depends on the port's current configuration, such as a native VLAN on an
// access port, the daemon refuses).
//
// Exit status: 0 success; 1 an error (one line on stderr that says what to
// do: a bad value, an unknown or duplicate port, the daemon not running);
// 2 a usage error (unknown command or flag, missing argument).
//
// Output: -o table (default) prints aligned columns for people; -o json
// prints the daemon's API answer unchanged (indented), for scripts.
//
// capture streams vswitchd's capture (GET /v1/capture, taken inside the
// datapath) into FILE as it comes; on Ctrl-C it half-closes the
// connection, which asks vswitchd to end the capture, and keeps copying
// until vswitchd has written the rest, so the file always ends complete.
// With --local it captures with its own packet socket (internal/capture).
//
// The command tree is built by newRoot and run by run(args, stdout, stderr),
// so the tests drive the real CLI in-process against an apitest fake daemon.
package main
