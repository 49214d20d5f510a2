package flagfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// NotInFile is the annotation (pflag.FlagSet.SetAnnotation) of a flag that
// the file may not set; its value says why, e.g. "a one-off command".
const NotInFile = "flagfile/not-in-file"

// byteOrderMark is U+FEFF encoded in UTF-8.
const byteOrderMark = "\ufeff"

// Origins maps the name of each flag the file set to "PATH:LINE".
type Origins map[string]string

// Apply reads the file at path and sets its settings on set, except flags
// already changed (the command line wins). A file that does not exist is
// no error when optional (nothing is set). It returns where each applied
// setting came from, for messages about values found bad later.
func Apply(set *pflag.FlagSet, path string, optional bool) (Origins, error) {
	f, err := os.Open(path)
	if err != nil {
		if optional && errors.Is(err, fs.ErrNotExist) {
			return Origins{}, nil
		}
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	return apply(set, path, f)
}

func apply(set *pflag.FlagSet, path string, r io.Reader) (Origins, error) {
	origins := Origins{}
	seen := map[string]int{} // name -> line
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		at := fmt.Sprintf("%s:%d", path, n)
		line := sc.Text()
		if n == 1 {
			// A byte order mark, which some editors write at the start
			// of a UTF-8 file: not part of the first setting's name.
			line = strings.TrimPrefix(line, byteOrderMark)
		}
		name, value, hasValue, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if name == "" {
			continue
		}
		fl := set.Lookup(name)
		if fl == nil {
			return nil, fmt.Errorf("%s: unknown setting %q (settings are %s's long flag names: see %s --help)", at, name, set.Name(), set.Name())
		}
		if why := fl.Annotations[NotInFile]; len(why) > 0 {
			return nil, fmt.Errorf("%s: %s cannot be set in the file (%s): give --%s on the command line", at, name, why[0], name)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s: %s is set twice (first at line %d)", at, name, prev)
		}
		seen[name] = n
		if !hasValue {
			if fl.NoOptDefVal == "" {
				return nil, fmt.Errorf("%s: %s needs a value (%s = VALUE)", at, name, name)
			}
			value = fl.NoOptDefVal
		}
		if fl.Changed {
			continue // given on the command line, which wins
		}
		if err := set.Set(name, value); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		origins[name] = at
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, n+1, err)
	}
	return origins, nil
}

// parseLine splits one line into its setting; name is "" for a blank or
// comment line.
func parseLine(line string) (name, value string, hasValue bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	i := strings.IndexAny(line, "= \t")
	if i < 0 {
		return strings.TrimPrefix(line, "--"), "", false, nil
	}
	name = strings.TrimPrefix(line[:i], "--")
	rest := strings.TrimLeft(line[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
		hasValue = true
	}
	if name == "" {
		return "", "", false, errors.New("a setting needs a name: NAME = VALUE")
	}
	switch {
	case rest == "" || rest[0] == '#': // no value, or only a comment
		return name, "", hasValue, nil
	case rest[0] == '"':
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", "", false, fmt.Errorf("%s: unterminated or invalid quoted value %s", name, rest)
		}
		if after := strings.TrimSpace(rest[len(q):]); after != "" && after[0] != '#' {
			return "", "", false, fmt.Errorf("%s: unexpected %q after the quoted value", name, after)
		}
		value, _ = strconv.Unquote(q)
		return name, value, true, nil
	}
	value = rest
	if j := strings.IndexAny(rest, " \t"); j >= 0 {
		if after := strings.TrimSpace(rest[j:]); after[0] != '#' {
			return "", "", false, fmt.Errorf("%s: one value per setting, got %q (quote a value that has blanks)", name, rest)
		}
		value = rest[:j]
	}
	return name, value, true, nil
}
