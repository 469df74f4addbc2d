package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/store"
)

// Limits of the files API (§13).
const (
	maxFilesPerWrite = 200
	maxFilesBody     = 10 << 20
	maxListDepth     = 10
	filesTimeout     = 60 * time.Second
)

// tokenFile is the agent's credential: never listed, read or written
// through the API (each provisioning writes a fresh one).
const tokenFile = ".auth_token"

// configPath validates a client path (§13): relative, no "..", no NUL; it
// returns the cleaned path ("" = the volume root).
func configPath(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", BadRequest("path must be valid UTF-8")
	}
	clean, ok := provisioner.CleanRelPath(p)
	if !ok {
		return "", BadRequest("path must be relative to /configs, without '..', backslashes or NUL characters")
	}
	if clean == tokenFile || strings.HasPrefix(clean, tokenFile+"/") {
		return "", Forbidden("the agent's token file is managed by the platform")
	}
	return clean, nil
}

// filesErr maps a provisioner file error; anything unknown stays opaque.
func filesErr(err error) error {
	switch {
	case errors.Is(err, provisioner.ErrNotFound):
		return NotFound("no such file or directory")
	case errors.Is(err, provisioner.ErrIsDir):
		return BadRequest("path is a directory")
	case errors.Is(err, provisioner.ErrNotDir):
		return BadRequest("path is not a directory")
	case errors.Is(err, provisioner.ErrUnsupported):
		return &Error{Status: http.StatusNotImplemented, Code: CodeUnavailable,
			Message: "this provisioner does not expose workspace config files", Err: err}
	}
	return err
}

// filesWorkspace is the loaded workspace, or a 400 for an external one:
// its agent runs elsewhere and has no config volume here.
func filesWorkspace(c *gin.Context) (*store.Workspace, bool) {
	ws := loadedWorkspace(c)
	if ws.External {
		Fail(c, BadRequest("an external workspace has no config volume on this platform"))
		return nil, false
	}
	return ws, true
}

// fileTarget is the preamble of the single-file routes: a workspace with
// a config volume and a confined *path naming something below the root
// (rootMsg answers a path that names the root itself).
func fileTarget(c *gin.Context, rootMsg string) (*store.Workspace, string, bool) {
	ws, ok := filesWorkspace(c)
	if !ok {
		return nil, "", false
	}
	// gin keeps the leading "/" on *path.
	p, err := configPath(strings.TrimPrefix(c.Param("path"), "/"))
	if err != nil {
		Fail(c, err)
		return nil, "", false
	}
	if p == "" {
		Fail(c, BadRequest(rootMsg))
		return nil, "", false
	}
	return ws, p, true
}

// GET /workspaces/:id/files?path&depth: entries of a /configs directory.
func (s *Server) listFiles(c *gin.Context) {
	ws, ok := filesWorkspace(c)
	if !ok {
		return
	}
	dir, err := configPath(c.Query("path"))
	if err != nil {
		Fail(c, err)
		return
	}
	depth := 1
	if v := c.Query("depth"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > maxListDepth {
			Fail(c, BadRequest(fmt.Sprintf("depth must be an integer from 1 to %d", maxListDepth)))
			return
		}
		depth = n
	}
	ctx, cancel := ctxTimeout(c.Request.Context(), filesTimeout)
	defer cancel()
	list, err := s.lifecycle.ListFiles(ctx, ws.ID, dir, depth)
	if err != nil {
		Fail(c, filesErr(err))
		return
	}
	out := make([]provisioner.FileInfo, 0, len(list))
	for _, f := range list {
		if f.Path != tokenFile {
			out = append(out, f)
		}
	}
	c.JSON(http.StatusOK, gin.H{"path": dir, "depth": depth, "files": out})
}

// GET /workspaces/:id/files/*path: one file. UTF-8 content is returned as
// text, anything else base64 with "encoding":"base64".
func (s *Server) readFile(c *gin.Context) {
	ws, p, ok := fileTarget(c, "path is a directory (list it with GET /workspaces/:id/files)")
	if !ok {
		return
	}
	ctx, cancel := ctxTimeout(c.Request.Context(), filesTimeout)
	defer cancel()
	data, err := s.lifecycle.ReadFile(ctx, ws.ID, p)
	if err != nil {
		Fail(c, filesErr(err))
		return
	}
	if utf8.Valid(data) {
		c.JSON(http.StatusOK, gin.H{"path": p, "size": len(data), "content": string(data), "encoding": "utf-8"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"path": p, "size": len(data), "content": base64.StdEncoding.EncodeToString(data), "encoding": "base64"})
}

// fileBody is one file's content in a PUT.
type fileBody struct {
	Content  *string `json:"content"`
	Encoding string  `json:"encoding"` // "" / "utf-8" or "base64"
}

func (f fileBody) bytes(field string) ([]byte, error) {
	if f.Content == nil {
		return nil, BadRequest(fmt.Sprintf("field %q is required", field))
	}
	switch f.Encoding {
	case "", "utf-8":
		return []byte(*f.Content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(*f.Content)
		if err != nil {
			return nil, BadRequest(fmt.Sprintf("field %q is not valid base64", field))
		}
		return b, nil
	}
	return nil, BadRequest(`encoding must be "utf-8" or "base64"`)
}

// PUT /workspaces/:id/files/*path {content, encoding?}: write one file.
func (s *Server) writeFile(c *gin.Context) {
	_, p, ok := fileTarget(c, "path must name a file")
	if !ok {
		return
	}
	var body fileBody
	if err := bindJSON(c, &body); err != nil {
		Fail(c, err)
		return
	}
	data, err := body.bytes("content")
	if err != nil {
		Fail(c, err)
		return
	}
	s.writeFiles(c, map[string][]byte{p: data})
}

// PUT /workspaces/:id/files {files: {relpath: content}}: write several
// files (UTF-8 text) in one operation.
func (s *Server) writeFileSet(c *gin.Context) {
	if _, ok := filesWorkspace(c); !ok {
		return
	}
	var body struct {
		Files map[string]string `json:"files"`
	}
	if err := bindJSON(c, &body); err != nil {
		Fail(c, err)
		return
	}
	files, err := cleanFileSet(body.Files, maxFilesPerWrite)
	if err != nil {
		Fail(c, err)
		return
	}
	s.writeFiles(c, files)
}

// cleanFileSet confines every path of a {relpath: content} body to the
// config volume: 1..max files, each naming a file, no two paths that clean
// to the same one.
func cleanFileSet(in map[string]string, max int) (map[string][]byte, error) {
	if len(in) == 0 {
		return nil, BadRequest(`field "files" must hold at least one file`)
	}
	if len(in) > max {
		return nil, BadRequest(fmt.Sprintf(`field "files" may hold at most %d files`, max))
	}
	files := make(map[string][]byte, len(in)+1)
	for k, v := range in {
		p, err := configPath(k)
		if err != nil {
			return nil, err
		}
		if p == "" {
			return nil, BadRequest("every path must name a file")
		}
		if _, dup := files[p]; dup {
			return nil, BadRequest(fmt.Sprintf("two paths clean to %q", p))
		}
		files[p] = []byte(v)
	}
	return files, nil
}

func (s *Server) writeFiles(c *gin.Context, files map[string][]byte) {
	ws := loadedWorkspace(c)
	ctx, cancel := ctxTimeout(c.Request.Context(), filesTimeout)
	defer cancel()
	if err := s.lifecycle.WriteFiles(ctx, ws.ID, files); err != nil {
		Fail(c, filesErr(err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "written", "files": provisioner.SortedKeys(files)})
}

// DELETE /workspaces/:id/files/*path: delete a file or directory.
func (s *Server) deleteFile(c *gin.Context) {
	ws, p, ok := fileTarget(c, "the /configs root cannot be deleted")
	if !ok {
		return
	}
	ctx, cancel := ctxTimeout(c.Request.Context(), filesTimeout)
	defer cancel()
	if err := s.lifecycle.DeletePath(ctx, ws.ID, p); err != nil {
		Fail(c, filesErr(err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "deleted", "path": p})
}
