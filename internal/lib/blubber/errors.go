package blubber

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnsupportedVersion is wrapped by the error Parse returns for a file whose
// version is not v4.
var ErrUnsupportedVersion = errors.New("unsupported config version")

// VersionError is returned for a configuration whose version is not v4.
type VersionError struct {
	Version string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("config version %q is unsupported; this tool reads only %q: set `version: %s` and update the file to the v4 schema", e.Version, ConfigVersion, ConfigVersion)
}

// Unwrap lets errors.Is(err, ErrUnsupportedVersion) match.
func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }

// FieldError is one problem with one field of a configuration.
type FieldError struct {
	// Path names the field, e.g. variants.test.copies[0].from; empty for the file.
	Path string
	// Line is the field's line in the file, 0 when unknown.
	Line int
	// Msg says what is wrong and what to do about it.
	Msg string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in a configuration, in file order. Parse and
// Resolve return it as their error; use errors.As to get the list.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errorList collects FieldErrors during a checking pass.
type errorList struct {
	errs  Errors
	lines map[string]int
	// cycle is set once an includes cycle is reported: every variant on the
	// cycle would report it again, from its own starting point.
	cycle bool
}

func (l *errorList) add(path, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{Path: path, Line: l.lines[path], Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) addLine(path string, line int, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// result sorts the errors by line (errors without a line last, by path) and
// drops exact duplicates, which merged variants can produce.
func (l *errorList) result() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return false
	})
	seen := map[string]bool{}
	out := Errors{}
	for _, e := range l.errs {
		if k := e.Error(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
