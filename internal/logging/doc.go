// Package logging builds vswitchd's logger (log/slog) for where its
// stderr goes (--log-format):
//
//   - text: slog's key=value lines with a timestamp, for a terminal or a
//     file (the default when stderr is not the journal);
//   - json: one JSON object per line, for log shippers;
//   - journal: for systemd's journal, which stamps each line itself and
//     reads a syslog priority from a "<N>" prefix (sd-daemon(3)): the text
//     form without the time, prefixed with the record level's priority
//     (debug 7, info 6, warn 4, error 3), so `journalctl -p warning` and
//     the colours work;
//   - auto (the default): journal when stderr is the journal's stream,
//     which systemd says in $JOURNAL_STREAM ("DEVICE:INODE" of the stream
//     it connected to stdout and stderr; sd_journal_stream_fd(3)), else
//     text. A program started from a service that inherited the variable
//     but not the stream (a shell redirected to a file) gets text, since
//     the device and inode no longer match.
//
// What the Go runtime writes to stderr itself, a panic's or a fatal
// error's stacks, bypasses the logger and has no prefix: the journal gives
// it the unit's SyslogLevel= (contrib/systemd/vswitchd.service sets err).
//
// The journal handler writes to the stream rather than speaking the
// journal's native protocol (github.com/systemd/slog-journal does that):
// the stream is what systemd already gives the service, needs no socket of
// its own, and keeps working when the journal restarts.
package logging
