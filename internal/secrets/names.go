package secrets

import (
	"errors"
	"fmt"
	"strings"
)

// maxNameLen is the longest secret name: one leading character plus 127.
const maxNameLen = 128

var (
	// ErrInvalidName: the name does not match ^[A-Z_][A-Z0-9_]{0,127}$.
	ErrInvalidName = errors.New("invalid secret name")
	// ErrReservedName: the platform sets this variable itself, and a secret
	// must not be able to override it (redirect the agent's platform URL,
	// preload a library, change its identity).
	ErrReservedName = errors.New("reserved secret name")
)

// reservedNames are the variables the provisioner injects into every
// workspace, plus loader and shell variables that change what runs. The
// git identity variables are deliberately absent: the contract lets a
// secret of that name win.
var reservedNames = map[string]bool{
	"WORKSPACE_ID":          true,
	"PLATFORM_URL":          true,
	"MOLECULE_URL":          true,
	"WORKSPACE_CONFIG_PATH": true,
	"TIER":                  true,
	"PYTHONPATH":            true,
	"PATH":                  true,
	"LD_PRELOAD":            true,
	"LD_LIBRARY_PATH":       true,
	"HOME":                  true,
	"HOSTNAME":              true,
}

// reservedPrefix covers every platform setting, present and future.
const reservedPrefix = "MOLECULE_"

// ValidateName checks a secret (environment variable) name: it must match
// ^[A-Z_][A-Z0-9_]{0,127}$ and must not be a name the platform injects
// itself (WORKSPACE_ID, PLATFORM_URL, PATH, LD_PRELOAD, anything starting
// with MOLECULE_, ...). Errors wrap ErrInvalidName or ErrReservedName with a
// message that names the key, quoted and shortened, so it is safe to show.
func ValidateName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidName, quoteName(name), reason)
	}
	if reservedNames[name] || strings.HasPrefix(name, reservedPrefix) {
		return fmt.Errorf("%w %s: the platform sets this variable itself", ErrReservedName, quoteName(name))
	}
	return nil
}

// nameProblem explains why name does not match the pattern, or returns "".
func nameProblem(name string) string {
	if name == "" {
		return "name is empty"
	}
	if len(name) > maxNameLen {
		return fmt.Sprintf("longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9':
			if i == 0 {
				return "must not start with a digit"
			}
		default:
			return "only upper-case letters, digits and _ are allowed"
		}
	}
	return ""
}

// quoteName quotes a name for an error message, escaping control bytes and
// cutting very long names so a client cannot make the message huge.
func quoteName(name string) string {
	const show = 40
	if len(name) > show {
		return fmt.Sprintf("%q...", name[:show])
	}
	return fmt.Sprintf("%q", name)
}
