package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestJournalHandlerPrefixesPriorityWithoutTime(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJournalHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Debug("d")
	log.Info("i", "port", "vnet1")
	log.With("uplink", "eth0").Warn("w")
	log.WithGroup("g").Error("e\nsecond line", "k", 1)
	log.Log(context.Background(), slog.LevelInfo+2, "between info and warn")
	want := []string{
		`<7>level=DEBUG msg=d`,
		`<6>level=INFO msg=i port=vnet1`,
		`<4>level=WARN msg=w uplink=eth0`,
		`<3>level=ERROR msg="e\nsecond line" g.k=1`,
		`<6>level=INFO+2 msg="between info and warn"`,
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d (one per record):\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
}

func TestJournalHandlerLevelAndReplaceAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewJournalHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "secret" {
				a.Value = slog.StringValue("-")
			}
			return a
		}}))
	log.Info("hidden")
	log.Warn("shown", "secret", "x")
	if got := buf.String(); got != "<4>level=WARN msg=shown secret=-\n" {
		t.Errorf("got %q", got)
	}
}

// stream is "DEV:INO" of f, as systemd puts it in JOURNAL_STREAM.
func stream(t *testing.T, f *os.File) string {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func tempFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestOnJournal(t *testing.T) {
	f, other := tempFile(t, "journal"), tempFile(t, "file")
	s := stream(t, f)
	for _, tc := range []struct {
		w      any
		stream string
		want   bool
	}{
		{f, s, true},
		{other, s, false}, // inherited the variable, not the stream
		{f, "", false},
		{f, "garbage", false},
		{f, "1:x", false},
		{&bytes.Buffer{}, s, false},
	} {
		w, _ := tc.w.(interface{ Write([]byte) (int, error) })
		if got := OnJournal(w, tc.stream); got != tc.want {
			t.Errorf("OnJournal(%T, %q) = %v, want %v", tc.w, tc.stream, got, tc.want)
		}
	}
}

// auto picks journal when stderr is the stream JOURNAL_STREAM names, text
// otherwise; explicit formats are taken as they are.
func TestNewResolvesAuto(t *testing.T) {
	journal, file := tempFile(t, "journal"), tempFile(t, "file")
	t.Setenv("JOURNAL_STREAM", stream(t, journal))
	for _, tc := range []struct {
		f      *os.File
		format Format
		check  func(line string) bool
		what   string
	}{
		{journal, Auto, func(l string) bool { return strings.HasPrefix(l, "<6>level=INFO msg=hello") }, "journal form"},
		{file, Auto, func(l string) bool {
			return strings.HasPrefix(l, "time=") && strings.Contains(l, "level=INFO msg=hello")
		}, "text form"},
		{journal, Text, func(l string) bool { return strings.HasPrefix(l, "time=") }, "text form"},
		{file, Journal, func(l string) bool { return strings.HasPrefix(l, "<6>") && !strings.Contains(l, "time=") }, "journal form"},
		{journal, JSON, func(l string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "hello" && m["level"] == "INFO"
		}, "JSON"},
	} {
		if err := tc.f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		New(tc.f, tc.format, slog.LevelInfo).Info("hello")
		b, err := os.ReadFile(tc.f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if line := strings.TrimSpace(string(b)); !tc.check(line) {
			t.Errorf("%s on %s: %q is not the %s", tc.format, filepath.Base(tc.f.Name()), line, tc.what)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"auto", "text", "json", "journal"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("%s: %v, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("syslog"); err == nil || !strings.Contains(err.Error(), "invalid --log-format \"syslog\": use auto, text, json or journal") {
		t.Errorf("syslog: %v", err)
	}
}

func TestPriority(t *testing.T) {
	for l, want := range map[slog.Level]int{slog.LevelDebug - 4: 7, slog.LevelDebug: 7, slog.LevelInfo: 6, slog.LevelWarn - 1: 6,
		slog.LevelWarn: 4, slog.LevelError: 3, slog.LevelError + 8: 3} {
		if got := Priority(l); got != want {
			t.Errorf("Priority(%v) = %d, want %d", l, got, want)
		}
	}
}

// A program's last error line is an err entry of the journal (one line),
// and the same text elsewhere or where another format was asked for.
func TestErrorLine(t *testing.T) {
	journal, file := tempFile(t, "journal"), tempFile(t, "file")
	t.Setenv("JOURNAL_STREAM", stream(t, journal))
	for _, tc := range []struct {
		f      *os.File
		format Format
		want   string
	}{
		{journal, Auto, "<3>prog: bad\tthing here\n"},
		{journal, Journal, "<3>prog: bad\tthing here\n"},
		{file, Journal, "<3>prog: bad\tthing here\n"},
		{file, Auto, "prog: bad\tthing\nhere\n"},
		{journal, Text, "prog: bad\tthing\nhere\n"},
		{journal, JSON, "prog: bad\tthing\nhere\n"},
	} {
		if err := tc.f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		ErrorLine(tc.f, tc.format, "prog: bad\tthing\nhere")
		b, err := os.ReadFile(tc.f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s on %s: %q, want %q", tc.format, filepath.Base(tc.f.Name()), b, tc.want)
		}
	}
}
