package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/a2a"
	"github.com/moleculesai/molecule/internal/store"
)

// Agent memory limits (§9).
const (
	memoryContentMax   = 100_000 // characters
	memoryNamespaceMax = 50
	memoryQueryMax     = 1000
	memoriesLimit      = 50
	defaultNamespace   = "general"
)

// Secret shapes redacted from memory content before it is stored (§9).
// They aim at the obvious leaks an agent copies from its environment or a
// request log; anything subtler is the agent's responsibility.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	// NAME_API_KEY=value, also _TOKEN, _SECRET, _PASSWORD, with = or :.
	{regexp.MustCompile(`(?i)\b([A-Z0-9_]*(?:API_KEY|APIKEY|_TOKEN|_SECRET|PASSWORD))(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s"',;]+)`), "${1}${2}[REDACTED]"},
	// Authorization bearers.
	{regexp.MustCompile(`(?i)\b(Bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*`), "${1} [REDACTED]"},
	// Provider keys: sk-…, sk-ant-…, GitHub tokens, AWS access key ids.
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_\-]{8,}`), "[REDACTED]"},
	{regexp.MustCompile(`\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{16,}`), "[REDACTED]"},
	{regexp.MustCompile(`\bAKIA[0-9A-Z]{16}\b`), "[REDACTED]"},
}

// redactSecrets replaces obvious secrets and reports whether it changed s.
func redactSecrets(s string) (string, bool) {
	out := s
	for _, p := range secretPatterns {
		out = p.re.ReplaceAllString(out, p.repl)
	}
	return out, out != s
}

func parseScope(field, v string) (string, error) {
	switch strings.ToUpper(v) {
	case store.ScopeLocal:
		return store.ScopeLocal, nil
	case store.ScopeTeam:
		return store.ScopeTeam, nil
	case store.ScopeGlobal:
		return store.ScopeGlobal, nil
	}
	return "", BadRequest(fmt.Sprintf("%s must be LOCAL, TEAM or GLOBAL", field))
}

func checkNamespace(field, ns string) error {
	if err := checkText(field, ns, memoryNamespaceMax); err != nil {
		return err
	}
	for _, r := range ns {
		if unicode.IsControl(r) {
			return BadRequest(fmt.Sprintf("%s must not contain control characters", field))
		}
	}
	return nil
}

type commitMemoryRequest struct {
	Content   string `json:"content"`
	Scope     string `json:"scope"`
	Namespace string `json:"namespace"`
}

// POST /workspaces/:id/memories
func (s *Server) commitMemory(c *gin.Context) {
	ws := loadedWorkspace(c)
	var req commitMemoryRequest
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if strings.TrimSpace(req.Content) == "" {
		Fail(c, BadRequest(`field "content" is required`))
		return
	}
	if err := checkText("content", req.Content, memoryContentMax); err != nil {
		Fail(c, err)
		return
	}
	scope := store.ScopeLocal
	if req.Scope != "" {
		var err error
		if scope, err = parseScope(`field "scope"`, req.Scope); err != nil {
			Fail(c, err)
			return
		}
	}
	if scope == store.ScopeGlobal && ws.ParentID != nil {
		Fail(c, Forbidden("only a root workspace may write GLOBAL memories"))
		return
	}
	ns := req.Namespace
	if ns == "" {
		ns = defaultNamespace
	}
	if err := checkNamespace(`field "namespace"`, ns); err != nil {
		Fail(c, err)
		return
	}
	content, redacted := redactSecrets(req.Content)
	m := &store.AgentMemory{WorkspaceID: ws.ID, Content: content, Scope: scope, Namespace: ns}
	if err := s.store.InsertAgentMemory(c.Request.Context(), m); err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{
		"id": m.ID, "workspace_id": m.WorkspaceID, "content": m.Content, "scope": m.Scope,
		"namespace": m.Namespace, "created_at": m.CreatedAt, "redacted": redacted,
	})
}

// GET /workspaces/:id/memories
func (s *Server) searchMemories(c *gin.Context) {
	ws := loadedWorkspace(c)
	limit, offset, err := page(c, memoriesLimit, memoriesLimit)
	if err != nil {
		Fail(c, err)
		return
	}
	q := store.MemoryQuery{Owner: ws.ID, Limit: limit, Offset: offset,
		Query: strings.TrimSpace(c.Query("q")), Namespace: c.Query("namespace")}
	if err := checkText("q", q.Query, memoryQueryMax); err != nil {
		Fail(c, err)
		return
	}
	if q.Namespace != "" {
		if err := checkNamespace("namespace", q.Namespace); err != nil {
			Fail(c, err)
			return
		}
	}
	if v := c.Query("scope"); v != "" {
		if q.Scope, err = parseScope("scope", v); err != nil {
			Fail(c, err)
			return
		}
	}
	if q.Scope == "" || q.Scope == store.ScopeTeam {
		if q.Team, err = s.team(c, ws.ID); err != nil {
			Fail(c, err)
			return
		}
	}
	out, err := s.store.SearchAgentMemories(c.Request.Context(), q)
	if err != nil {
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// team is ws's team for TEAM memories: its parent and the parent's
// children (its siblings), plus its own children, kept only where
// a2a.CanCommunicate allows — the one place access is decided.
func (s *Server) team(c *gin.Context, ws uuid.UUID) ([]uuid.UUID, error) {
	ctx := c.Request.Context()
	cands, err := s.store.TeamCandidates(ctx, ws)
	if err != nil {
		return nil, err
	}
	chains, err := s.store.AncestorChains(ctx, append(cands, ws)...)
	if err != nil {
		return nil, err
	}
	team := []uuid.UUID{ws}
	for _, id := range cands {
		if id != ws && a2a.CanCommunicate(chains[ws], chains[id]) {
			team = append(team, id)
		}
	}
	return team, nil
}

// DELETE /workspaces/:id/memories/:memoryId
func (s *Server) deleteAgentMemory(c *gin.Context) {
	id, err := pathUUID(c, "memoryId")
	if err != nil {
		Fail(c, err)
		return
	}
	if err := s.store.DeleteAgentMemory(c.Request.Context(), loadedWorkspace(c).ID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = NotFound("memory not found")
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "id": id})
}
