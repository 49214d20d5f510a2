package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Format is a --log-format value.
type Format string

const (
	Auto    Format = "auto"
	Text    Format = "text"
	JSON    Format = "json"
	Journal Format = "journal"
)

// ParseFormat checks a --log-format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Auto, Text, JSON, Journal:
		return f, nil
	}
	return "", fmt.Errorf("invalid --log-format %q: use auto, text, json or journal", s)
}

// Resolve turns auto into journal or text for w (see OnJournal).
func (f Format) Resolve(w io.Writer) Format {
	if f != Auto {
		return f
	}
	if OnJournal(w, os.Getenv("JOURNAL_STREAM")) {
		return Journal
	}
	return Text
}

// New returns a logger in format f (auto resolved for w) at level.
func New(w io.Writer, f Format, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	switch f.Resolve(w) {
	case JSON:
		return slog.New(slog.NewJSONHandler(w, opts))
	case Journal:
		return slog.New(NewJournalHandler(w, opts))
	default:
		return slog.New(slog.NewTextHandler(w, opts))
	}
}

// OnJournal says whether w is the journal's stream: an *os.File whose
// device and inode are those stream says ($JOURNAL_STREAM, "DEV:INO").
func OnJournal(w io.Writer, stream string) bool {
	f, ok := w.(*os.File)
	if !ok || stream == "" {
		return false
	}
	d, i, ok := strings.Cut(stream, ":")
	if !ok {
		return false
	}
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// Priority is the syslog priority of a level: debug 7, info 6, warn 4,
// error 3 (levels between take the one below: slog.LevelInfo+2 is 6).
func Priority(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 7
	case l < slog.LevelWarn:
		return 6
	case l < slog.LevelError:
		return 4
	default:
		return 3
	}
}

// NewJournalHandler returns a handler that writes slog's text form
// without the time, each record prefixed with its priority ("<6>level=INFO
// msg=..."). A record is one line: the text handler quotes newlines.
func NewJournalHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	var o slog.HandlerOptions
	if opts != nil {
		o = *opts
	}
	replace := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{} // the journal stamps each entry
		}
		if replace != nil {
			return replace(groups, a)
		}
		return a
	}
	out := &journalWriter{w: w}
	return &journalHandler{h: slog.NewTextHandler(out, &o), out: out}
}

// journalWriter prefixes what the text handler writes with the priority of
// the record being handled; the handler holds mu across the record.
type journalWriter struct {
	mu   sync.Mutex
	w    io.Writer
	prio int
	buf  bytes.Buffer
}

func (j *journalWriter) Write(p []byte) (int, error) {
	j.buf.Reset()
	j.buf.WriteByte('<')
	j.buf.WriteString(strconv.Itoa(j.prio))
	j.buf.WriteByte('>')
	j.buf.Write(p)
	if _, err := j.w.Write(j.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

type journalHandler struct {
	h   slog.Handler
	out *journalWriter
}

func (j *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return j.h.Enabled(ctx, l)
}

func (j *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	j.out.mu.Lock()
	defer j.out.mu.Unlock()
	j.out.prio = Priority(r.Level)
	return j.h.Handle(ctx, r)
}

func (j *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{h: j.h.WithAttrs(as), out: j.out}
}

func (j *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{h: j.h.WithGroup(name), out: j.out}
}

// ErrorLine writes line, a program's one-line error before it exits, on w:
// in the journal's form when f resolves to it for w, i.e. with priority err
// ("<3>", newlines made blanks: one entry), so that `journalctl -p err`
// shows why the program stopped; elsewhere as it is. The line is not a
// record of the logger: it stays the same text, as the program's error
// message is a contract.
func ErrorLine(w io.Writer, f Format, line string) {
	if f.Resolve(w) == Journal {
		line = "<" + strconv.Itoa(Priority(slog.LevelError)) + ">" + strings.ReplaceAll(line, "\n", " ")
	}
	fmt.Fprintln(w, line)
}
