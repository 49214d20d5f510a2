// Command vswitchd is the vswitch daemon: an IEEE 802.1Qbg EVB station that
// tags every VM port's frames and sends them to the adjacent bridge for
// reflective relay. It only parses flags, sets up logging and signals, and
// hands over to internal/daemon; or, with --check, --salvage or
// --drop-port, runs one offline command on the state file
// (internal/store) and exits, which works while the daemon cannot start.
package main
