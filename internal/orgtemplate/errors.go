package orgtemplate

import (
	"errors"
	"strconv"
	"strings"
)

// ErrNotFound marks a template directory (or its org.yaml) that does not
// exist. The import handler answers 404 for it and 400 for every other
// *Error; test with IsNotFound.
var ErrNotFound = errors.New("org template not found")

// Error is every error this package returns for a template the caller
// supplied. Its text is written for the template's author: it names the
// file (relative to the org root), the line and the YAML path, and never
// contains absolute host paths or values of variables.
type Error struct {
	// File is the template file the problem is in, relative to the org
	// root ("teams/dev.yaml"); empty for an inline template.
	File string
	// Line is the 1-based line in File, 0 when unknown.
	Line int
	// Path is the YAML path of the offending value, such as
	// "workspaces[2].children[0].schedules[1].cron_expr".
	Path string
	Msg  string

	err error // sentinel for errors.Is (ErrNotFound)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap lets errors.Is(err, ErrNotFound) work.
func (e *Error) Unwrap() error { return e.err }

// IsNotFound reports whether err means the template directory or its
// org.yaml does not exist (404), as opposed to a broken template (400).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func indexPath(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

func joinPath(base, field string) string {
	if base == "" {
		return field
	}
	return base + "." + field
}
