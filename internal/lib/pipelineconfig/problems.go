package pipelineconfig

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wikimedia/conveyor/activities/contract"
	"github.com/wikimedia/conveyor/internal/lib/repofile"
)

// Problem is one thing wrong with a repository's pipeline settings or Blubber
// config.
type Problem struct {
	// File is the file's path in the repository, e.g. .pipeline/config.yaml.
	File string
	// Field names the field, e.g. pipeline.e2e[1].path; empty for the whole file.
	Field string
	// Line is the field's line in File, 0 when unknown.
	Line int
	// Msg says what is wrong and what to do about it.
	Msg string
	// Blubber is set for problems of the Blubber config itself, as opposed to the
	// pipeline settings (which include naming variants the Blubber config lacks).
	Blubber bool
}

// String is "file: field: msg (line n)".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	b.WriteString(": " + p.Msg)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// InvalidError is every problem ParseSettings found, in file order.
type InvalidError struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Type is the activity error type: contract.ErrInvalidConfig when a pipeline
// setting is wrong, else contract.ErrInvalidBlubber.
func (e *InvalidError) Type() string {
	for _, p := range e.Problems {
		if !p.Blubber {
			return contract.ErrInvalidConfig
		}
	}
	return contract.ErrInvalidBlubber
}

// readProblem says why a file of the repository could not be read, without
// repeating its name (the Problem has it).
func readProblem(err error) string {
	var tooLarge *repofile.TooLargeError
	if errors.As(err, &tooLarge) {
		return tooLarge.Reason()
	}
	return fmt.Sprintf("cannot be read: %v", err)
}
