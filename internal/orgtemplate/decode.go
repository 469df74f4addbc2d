package orgtemplate

import (
	"fmt"
	"math"
	"strings"

	"gopkg.in/yaml.v3"
)

// at is where a value sits: the file it came from and its YAML path.
type at struct {
	file string
	path string
}

func (l *loader) errAt(a at, n *yaml.Node, format string, args ...any) *Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: a.file, Line: line, Path: a.path, Msg: fmt.Sprintf(format, args...)}
}

// enter follows aliases, charges the node budget and switches to the
// included file's name when n is the root of an include.
func (l *loader) enter(a at, n *yaml.Node) (at, *yaml.Node, error) {
	for hops := 0; n.Kind == yaml.AliasNode; hops++ {
		if hops > 64 || n.Alias == nil {
			return a, n, l.errAt(a, n, "alias cannot be resolved")
		}
		n = n.Alias
	}
	l.nodes++
	if l.nodes > maxNodes {
		return a, n, l.errAt(a, n, "template has more than %d YAML nodes (alias expansion?)", maxNodes)
	}
	if f, ok := l.origin[n]; ok {
		a.file = f
	}
	return a, n, nil
}

// field is one key of a mapping with its value and location.
type field struct {
	key string
	val *yaml.Node
	at  at
}

// fields reads a mapping into key -> field, merging "<<" keys (the YAML
// merge key, which is how a team file extends a role's workspace.yaml:
// `<<: !include ../dev-lead/workspace.yaml`). Explicit keys win over
// merged ones; a key written twice is an error. Keys not in known (and not
// prefixed "x-", which is left for extensions) are an error, so a typo
// never silently drops a setting.
func (l *loader) fields(a at, n *yaml.Node, known ...string) (map[string]field, error) {
	a, n, err := l.enter(a, n)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, l.errAt(a, n, "expected a mapping, got %s", kindName(n))
	}
	out := map[string]field{}
	var merged []map[string]field
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, l.errAt(a, k, "mapping keys must be strings")
		}
		if k.Tag == "!!merge" || k.Value == "<<" {
			ms, err := l.mergeSources(a, v, known)
			if err != nil {
				return nil, err
			}
			merged = append(merged, ms...)
			continue
		}
		if _, dup := out[k.Value]; dup {
			return nil, l.errAt(at{a.file, joinPath(a.path, k.Value)}, k, "key %q is set twice", k.Value)
		}
		if !contains(known, k.Value) && !strings.HasPrefix(k.Value, "x-") {
			return nil, l.errAt(at{a.file, joinPath(a.path, k.Value)}, k, "unknown field %q", k.Value)
		}
		out[k.Value] = field{key: k.Value, val: v, at: at{a.file, joinPath(a.path, k.Value)}}
	}
	for _, m := range merged {
		for k, f := range m {
			if _, ok := out[k]; !ok {
				out[k] = f
			}
		}
	}
	return out, nil
}

func (l *loader) mergeSources(a at, v *yaml.Node, known []string) ([]map[string]field, error) {
	a, v, err := l.enter(a, v)
	if err != nil {
		return nil, err
	}
	switch v.Kind {
	case yaml.MappingNode:
		m, err := l.fields(a, v, known...)
		if err != nil {
			return nil, err
		}
		return []map[string]field{m}, nil
	case yaml.SequenceNode:
		var out []map[string]field
		for _, item := range v.Content {
			m, err := l.fields(a, item, known...)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, nil
	}
	return nil, l.errAt(a, v, "a merge key (<<) needs a mapping or a list of mappings, got %s", kindName(v))
}

// seq returns the items of a sequence; a null value is an empty list.
func (l *loader) seq(f field) (at, []*yaml.Node, error) {
	a, n, err := l.enter(f.at, f.val)
	if err != nil {
		return a, nil, err
	}
	if isNull(n) {
		return a, nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return a, nil, l.errAt(a, n, "expected a list, got %s", kindName(n))
	}
	return a, n.Content, nil
}

// str reads any scalar as its text (so `role: 2024` is the string "2024");
// null is "".
func (l *loader) str(f field) (string, error) {
	a, n, err := l.enter(f.at, f.val)
	if err != nil {
		return "", err
	}
	if isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", l.errAt(a, n, "expected a string, got %s", kindName(n))
	}
	return n.Value, nil
}

func (l *loader) integer(f field) (int64, error) {
	a, n, err := l.enter(f.at, f.val)
	if err != nil {
		return 0, err
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, l.errAt(a, n, "expected an integer")
	}
	return v, nil
}

func (l *loader) number(f field) (float64, error) {
	a, n, err := l.enter(f.at, f.val)
	if err != nil {
		return 0, err
	}
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil ||
		math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, l.errAt(a, n, "expected a number")
	}
	return v, nil
}

func (l *loader) boolean(f field) (bool, error) {
	a, n, err := l.enter(f.at, f.val)
	if err != nil {
		return false, err
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		return false, l.errAt(a, n, "expected true or false")
	}
	return v, nil
}

// strings reads a list of strings.
func (l *loader) strList(f field) ([]string, error) {
	a, items, err := l.seq(f)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		s, err := l.str(field{val: item, at: at{a.file, a.path + fmt.Sprintf("[%d]", i)}})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// anyValue converts a YAML value into JSON-shaped Go values (map[string]any,
// []any, string, int64, float64, bool, nil), expanding ${VAR} in every
// string on the way (used for channel config).
func (l *loader) anyValue(a at, n *yaml.Node) (any, error) {
	a, n, err := l.enter(a, n)
	if err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, l.errAt(a, k, "config keys must be plain strings")
			}
			ka := at{a.file, joinPath(a.path, k.Value)}
			if _, dup := m[k.Value]; dup {
				return nil, l.errAt(ka, k, "key %q is set twice", k.Value)
			}
			v, err := l.anyValue(ka, n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			v, err := l.anyValue(at{a.file, a.path + fmt.Sprintf("[%d]", i)}, item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, nil
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return nil, l.errAt(a, n, "invalid %s value", strings.TrimPrefix(n.Tag, "!!"))
			}
			if i, ok := v.(int); ok {
				return int64(i), nil
			}
			return v, nil
		default:
			s, err := l.expand(n.Value)
			if err != nil {
				return nil, l.errAt(a, n, "%s", err)
			}
			return s, nil
		}
	}
	return nil, l.errAt(a, n, "unsupported value")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	}
	return "an unsupported value"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
