package orgtemplate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Summary describes one org template for GET /org/templates. A template
// that fails to load is still listed, with Error set (and Workspaces 0),
// so an operator sees why it cannot be imported.
type Summary struct {
	Dir         string `json:"dir"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Workspaces counts every workspace after includes are resolved.
	Workspaces int    `json:"workspaces"`
	Error      string `json:"error,omitempty"`
}

// List loads every subdirectory of templatesRoot that holds an org.yaml,
// sorted by directory name. Hidden directories are skipped. A missing
// templatesRoot is an empty list (a fresh install may have none); only a
// root that cannot be read is an error.
func List(templatesRoot string, opts Options) ([]Summary, error) {
	entries, err := os.ReadDir(templatesRoot)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []Summary{}, nil
		}
		return nil, err
	}
	out := []Summary{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		dir := filepath.Join(templatesRoot, name)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, OrgFile)); err != nil {
			continue
		}
		s := Summary{Dir: name}
		org, err := LoadDir(dir, opts)
		if err != nil {
			s.Error = err.Error()
			s.Name = name
		} else {
			s.Name, s.Description, s.Workspaces = org.Name, org.Description, org.Count()
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, nil
}

// ResolveDir turns the `dir` of POST /org/import into a path under
// templatesRoot. dir must be a single directory name (no separators, no
// "." or ".."); anything else is an *Error (400). Whether it exists is
// left to LoadDir, whose error IsNotFound when it does not.
func ResolveDir(templatesRoot, dir string) (string, error) {
	if dir == "" || dir == "." || dir == ".." || strings.ContainsAny(dir, `/\`+"\x00") || len(dir) > 255 {
		return "", &Error{Msg: "dir must be the name of a directory under the org templates directory"}
	}
	return filepath.Join(templatesRoot, dir), nil
}
