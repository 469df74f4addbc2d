package orgtemplate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DotenvFile is the optional file of template variables at the org root.
const DotenvFile = ".env"

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// loadDotenv reads the org root's .env, if there is one, confined to the
// root like every other file.
func (l *loader) loadDotenv() error {
	data, name, _, err := l.readFile(l.root, DotenvFile, "", nil)
	if err != nil {
		if errors.Is(err, errMissing) {
			return nil
		}
		return err
	}
	vars, err := parseDotenv(string(data))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = name
		}
		return err
	}
	l.dotenv = vars
	return nil
}

// parseDotenv reads KEY=VALUE lines. Blank lines and lines starting with #
// are skipped, "export " is allowed before the key, values may be wrapped
// in single quotes (taken literally) or double quotes (\n, \t, \" and \\
// escapes), and an unquoted value ends at " #".
func parseDotenv(text string) (map[string]string, error) {
	vars := map[string]string{}
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !varName.MatchString(key) {
			return nil, &Error{Line: i + 1, Msg: "expected KEY=VALUE"}
		}
		value = strings.TrimSpace(value)
		switch {
		case len(value) >= 2 && value[0] == '\'' && strings.LastIndexByte(value, '\'') > 0:
			end := strings.LastIndexByte(value, '\'')
			if rest := strings.TrimSpace(value[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, &Error{Line: i + 1, Msg: "unexpected text after the closing quote"}
			}
			value = value[1:end]
		case len(value) >= 1 && value[0] == '"':
			v, rest, err := unquoteDouble(value[1:])
			if err != nil {
				return nil, &Error{Line: i + 1, Msg: err.Error()}
			}
			if rest = strings.TrimSpace(rest); rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, &Error{Line: i + 1, Msg: "unexpected text after the closing quote"}
			}
			value = v
		case len(value) >= 1 && value[0] == '\'':
			return nil, &Error{Line: i + 1, Msg: "unterminated single quote"}
		default:
			if j := strings.Index(value, " #"); j >= 0 {
				value = strings.TrimSpace(value[:j])
			}
		}
		vars[key] = value
	}
	return vars, nil
}

// unquoteDouble reads a double-quoted value whose opening quote has been
// consumed; it returns the value and the text after the closing quote.
func unquoteDouble(s string) (string, string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated double quote")
}

// lookup resolves one variable: the org's .env, then global secrets, then
// the server environment only for allowlisted names.
func (l *loader) lookup(name string) (string, bool) {
	if v, ok := l.dotenv[name]; ok {
		return v, true
	}
	if l.opts.Secrets != nil {
		if v, ok := l.opts.Secrets(name); ok {
			return v, true
		}
	}
	if l.allowed[name] {
		if v := l.opts.Getenv(name); v != "" {
			return v, true
		}
	}
	return "", false
}

// expand replaces ${NAME} in s. "$${" stands for a literal "${"; a "$"
// not followed by "{" is kept as is. An unknown or malformed variable is
// an error; the message names the variable, never a value.
func (l *loader) expand(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", errors.New(`unterminated "${" (write "$${" for a literal "${")`)
		}
		name := s[i+2 : i+2+end]
		if !varName.MatchString(name) {
			return "", fmt.Errorf("invalid variable name %q", name)
		}
		v, ok := l.lookup(name)
		if !ok {
			where := "the org's .env, global secrets"
			if l.inline {
				where = "global secrets"
			}
			return "", fmt.Errorf("unresolved variable ${%s} (looked in %s and the server variables allowed by MOLECULE_TEMPLATE_ENV)", name, where)
		}
		b.WriteString(v)
		i += 2 + end
	}
	return b.String(), nil
}
