// Command vswitchd is the vswitch daemon: an IEEE 802.1Qbg EVB station that
// tags every VM port's frames and sends them to the adjacent bridge for
// reflective relay. It only reads its settings, sets up logging and
// signals, and hands over to internal/daemon; or, with --check, --salvage
// or --drop-port, runs one offline command on the state file
// (internal/store) and exits, which works while the daemon cannot start.
//
// Settings (flags.go) are GNU-style flags (spf13/pflag; the single-dash
// spelling of older versions is rewritten by gnuArgs), then the config
// file (--config, default /etc/vswitch/vswitchd.conf) for what the command
// line left unset, applied through the same FlagSet by internal/flagfile so
// that every value is parsed and checked once; a bad value from the file is
// reported with its file and line. FlagSet builds the flags without
// parsing, for the man page. Exit status 2 is a usage or config error, 1 a
// failure to start or run.
//
// Under systemd (contrib/systemd/vswitchd.service, Type=notify) it tells
// systemd when it is ready and stopping (internal/sdnotify), and logs in
// the journal's form when stderr is the journal (internal/logging).
package main
