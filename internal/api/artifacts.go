package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/artifacts"
	"github.com/moleculesai/molecule/internal/store"
)

// Cloudflare Artifacts (§18): one git repo per workspace. Every argument is
// validated here, before any call upstream, so that a bad name, a non-https
// import URL or a bad token request never reaches Cloudflare. Upstream
// answers are classified by artifactsFail: a genuine Cloudflare 4xx passes
// its status and message through; anything else is a 502 whose detail is
// logged only.

const (
	maxArtifactDescription = 1024
	maxImportBranch        = 255
	// cleanupTimeout bounds deleting a repo that was created but could not
	// be linked; it runs after the request's own context may have ended.
	cleanupTimeout = 15 * time.Second
)

// errArtifactsOff is the 503 of every route when either CF_ARTIFACTS_*
// variable is missing.
var errArtifactsOff = Unavailable("artifacts not configured")

// errNoArtifact is the 404 of the routes that need a linked repo.
var errNoArtifact = NotFound("no artifacts repo is linked to this workspace")

// requireArtifacts answers 503 when the Artifacts client is not configured.
// It runs after workspaceAuth, so an anonymous caller still gets 401 and
// learns nothing about the configuration.
func (s *Server) requireArtifacts(c *gin.Context) {
	if s.artifacts == nil {
		Fail(c, errArtifactsOff)
		return
	}
	c.Next()
}

// upstreamError marks an error returned by the Artifacts client, so that
// it is told apart from store errors after a transaction.
type upstreamError struct {
	op  string
	err error
}

func (e *upstreamError) Error() string { return e.op + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// artifactsFail answers an error of the Artifacts client (§18): a genuine
// Cloudflare 4xx keeps its status and message; a 5xx, a transport failure,
// an oversized or non-Cloudflare body is a 502 "upstream service error",
// with the upstream text logged and never sent.
func (s *Server) artifactsFail(c *gin.Context, op string, err error) {
	if c.Request.Context().Err() != nil && errors.Is(err, context.Canceled) {
		c.Abort() // the caller went away
		return
	}
	if status, msg, ok := artifacts.IsClientError(err); ok {
		Fail(c, newErr(status, codeForStatus(status), msg))
		return
	}
	if errors.Is(err, artifacts.ErrInvalidArgument) {
		// The handler validates first; reaching this is a bug on our side,
		// but the request was the caller's, so answer 400 without detail.
		logger(c).Error("artifacts client refused an argument the handler accepted", "op", op, "err", err)
		Fail(c, BadRequest("invalid artifacts request"))
		return
	}
	attrs := []any{"op", op, "err", err}
	var ae *artifacts.APIError
	if errors.As(err, &ae) {
		attrs = append(attrs, "upstream_status", ae.StatusCode, "upstream_detail", ae.Detail)
	}
	logger(c).Warn("artifacts upstream failure", attrs...)
	Fail(c, &Error{Status: http.StatusBadGateway, Code: CodeUpstream, Message: "upstream service error", Err: err})
}

// codeForStatus names the §0 code of a Cloudflare 4xx passed through.
func codeForStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeRateLimited
	}
	return CodeInvalidRequest
}

// artifactRepoView is Cloudflare's description of a repo as we show it:
// the remote URL always without credentials.
type artifactRepoView struct {
	Name          string    `json:"name"`
	Namespace     string    `json:"namespace"`
	Description   string    `json:"description"`
	RemoteURL     string    `json:"remote_url"`
	DefaultBranch string    `json:"default_branch,omitempty"`
	ReadOnly      bool      `json:"read_only"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func repoView(r *artifacts.Repo, namespace string) artifactRepoView {
	if r.Namespace != "" {
		namespace = r.Namespace
	}
	return artifactRepoView{
		Name: r.Name, Namespace: namespace, Description: r.Description,
		RemoteURL: artifacts.StripCredentials(r.RemoteURL), DefaultBranch: r.DefaultBranch,
		ReadOnly: r.ReadOnly, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// checkRepoName applies the §18 name rule to an explicit name.
func checkRepoName(field, name string) error {
	if !artifacts.ValidRepoName(name) {
		return BadRequest(fmt.Sprintf("field %q must be 1-63 letters, digits, '_' or '-', starting with a letter or digit", field))
	}
	return nil
}

// checkBranch accepts a conservative subset of git ref names: letters,
// digits, '.', '_', '-' and '/', no "..", "//" or "@{", not starting with
// '-', '/' or '.', not ending with '/', '.' or ".lock".
func checkBranch(b string) error {
	bad := len(b) == 0 || len(b) > maxImportBranch ||
		strings.Contains(b, "..") || strings.Contains(b, "//") ||
		strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasPrefix(b, ".") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, ".lock")
	for i := 0; i < len(b) && !bad; i++ {
		ch := b[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '.' || ch == '_' || ch == '-' || ch == '/'
		bad = !ok
	}
	if bad {
		return BadRequest(`field "import_branch" must be a git branch name (letters, digits, '.', '_', '-', '/')`)
	}
	return nil
}

// linkedArtifact loads the workspace's link (404 when none) and checks it
// lives in the namespace this server works in.
func (s *Server) linkedArtifact(c *gin.Context) (*store.WorkspaceArtifact, error) {
	link, err := s.store.GetWorkspaceArtifact(c.Request.Context(), loadedWorkspace(c).ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoArtifact
	}
	if err != nil {
		return nil, err
	}
	if ns := s.artifacts.Namespace(); link.Namespace != ns {
		return nil, Conflict(fmt.Sprintf("the linked repo lives in namespace %q, not the configured %q", link.Namespace, ns))
	}
	return link, nil
}

type createArtifactRequest struct {
	Name         *string `json:"name"`
	Description  string  `json:"description"`
	ImportURL    *string `json:"import_url"`
	ImportBranch string  `json:"import_branch"`
	ImportDepth  int     `json:"import_depth"`
	ReadOnly     bool    `json:"read_only"`
}

func (r *createArtifactRequest) validate() error {
	if r.Name != nil {
		if err := checkRepoName("name", *r.Name); err != nil {
			return err
		}
	}
	if err := checkText("description", r.Description, maxArtifactDescription); err != nil {
		return err
	}
	if r.ImportURL == nil {
		if r.ImportBranch != "" || r.ImportDepth != 0 {
			return BadRequest(`fields "import_branch" and "import_depth" need "import_url"`)
		}
		return nil
	}
	if artifacts.ValidateImportURL(*r.ImportURL) != nil {
		return BadRequest(`field "import_url" must be an https:// URL with a host and no user info`)
	}
	if r.ImportBranch != "" {
		if err := checkBranch(r.ImportBranch); err != nil {
			return err
		}
	}
	if r.ImportDepth < 0 {
		return BadRequest(`field "import_depth" must be 0 (full history) or positive`)
	}
	return nil
}

// POST /workspaces/:id/artifacts: create a repo (or import one from an
// https remote) and link it; 409 when one is already linked.
func (s *Server) createArtifact(c *gin.Context) {
	var req createArtifactRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		Fail(c, err)
		return
	}
	ws := loadedWorkspace(c)
	name := artifacts.DefaultRepoName(ws.ID.String())
	if req.Name != nil {
		name = *req.Name
	}
	ns := s.artifacts.Namespace()

	var created *artifacts.Repo
	link, err := s.store.LinkWorkspaceArtifact(c.Request.Context(), ws.ID,
		func(ctx context.Context) (*store.WorkspaceArtifact, error) {
			var repo *artifacts.Repo
			var err error
			op := "create repo"
			if req.ImportURL != nil {
				op = "import repo"
				repo, err = s.artifacts.ImportRepo(ctx, artifacts.ImportRepoRequest{
					Name: name, Description: req.Description, ReadOnly: req.ReadOnly,
					URL: *req.ImportURL, Branch: req.ImportBranch, Depth: req.ImportDepth,
				})
			} else {
				repo, err = s.artifacts.CreateRepo(ctx, artifacts.CreateRepoRequest{
					Name: name, Description: req.Description, ReadOnly: req.ReadOnly,
				})
			}
			if err != nil {
				return nil, &upstreamError{op: op, err: err}
			}
			created = repo
			return &store.WorkspaceArtifact{
				RepoName: name, Namespace: ns, Description: req.Description,
				RemoteURL: artifacts.StripCredentials(repo.RemoteURL),
			}, nil
		})
	if err != nil {
		if created != nil {
			s.dropUnlinkedRepo(c, name)
		}
		var ue *upstreamError
		if errors.As(err, &ue) {
			s.artifactsFail(c, ue.op, ue.err)
			return
		}
		Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, link)
}

// dropUnlinkedRepo deletes a repo that Cloudflare created but the database
// did not link (the insert or commit failed), unless the link turns out to
// exist after all: a retry would otherwise meet a 409 for its own repo.
func (s *Server) dropUnlinkedRepo(c *gin.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), cleanupTimeout)
	defer cancel()
	link, err := s.store.GetWorkspaceArtifact(ctx, loadedWorkspace(c).ID)
	switch {
	case err == nil && link.RepoName == name:
		return // the commit went through; the repo is linked
	case err != nil && !errors.Is(err, store.ErrNotFound):
		logger(c).Error("artifacts repo may be orphaned: cannot read the link", "repo", name, "err", err)
		return
	}
	if err := s.artifacts.DeleteRepo(ctx, name); err != nil {
		logger(c).Error("artifacts repo orphaned: delete after failed link failed", "repo", name, "err", err)
	}
}

// GET /workspaces/:id/artifacts: the stored link plus Cloudflare's live
// description of the repo; 404 when none is linked.
func (s *Server) getArtifact(c *gin.Context) {
	link, err := s.linkedArtifact(c)
	if err != nil {
		Fail(c, err)
		return
	}
	repo, err := s.artifacts.GetRepo(c.Request.Context(), link.RepoName)
	if err != nil {
		s.artifactsFail(c, "get repo", err)
		return
	}
	c.JSON(http.StatusOK, gin.H{
		"id": link.ID, "workspace_id": link.WorkspaceID, "cf_repo_name": link.RepoName,
		"cf_namespace": link.Namespace, "remote_url": link.RemoteURL, "description": link.Description,
		"created_at": link.CreatedAt, "updated_at": link.UpdatedAt,
		"repo": repoView(repo, link.Namespace),
	})
}

// POST /workspaces/:id/artifacts/fork: fork the linked repo into a new repo
// named by the caller. The fork is returned, not linked: a workspace links
// exactly one repo.
func (s *Server) forkArtifact(c *gin.Context) {
	var req struct {
		Name              *string `json:"name"`
		Description       string  `json:"description"`
		ReadOnly          bool    `json:"read_only"`
		DefaultBranchOnly bool    `json:"default_branch_only"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.Name == nil {
		Fail(c, BadRequest(`field "name" is required`))
		return
	}
	if err := checkRepoName("name", *req.Name); err != nil {
		Fail(c, err)
		return
	}
	if err := checkText("description", req.Description, maxArtifactDescription); err != nil {
		Fail(c, err)
		return
	}
	link, err := s.linkedArtifact(c)
	if err != nil {
		Fail(c, err)
		return
	}
	repo, err := s.artifacts.ForkRepo(c.Request.Context(), link.RepoName, artifacts.ForkRepoRequest{
		Name: *req.Name, Description: req.Description, ReadOnly: req.ReadOnly,
		DefaultBranchOnly: req.DefaultBranchOnly,
	})
	if err != nil {
		s.artifactsFail(c, "fork repo", err)
		return
	}
	v := repoView(repo, link.Namespace)
	if v.Name == "" {
		v.Name = *req.Name
	}
	c.JSON(http.StatusCreated, gin.H{"forked_from": link.RepoName, "repo": v})
}

// POST /workspaces/:id/artifacts/token: a short-lived git credential for
// the linked repo. The secret is in the answer only, never stored or logged.
func (s *Server) createArtifactToken(c *gin.Context) {
	var req struct {
		Scope *string `json:"scope"`
		TTL   *int    `json:"ttl"`
	}
	if err := bindJSON(c, &req); err != nil {
		Fail(c, err)
		return
	}
	if req.Scope == nil || !artifacts.ValidScope(*req.Scope) {
		Fail(c, BadRequest(`field "scope" must be "read" or "write"`))
		return
	}
	ttl := artifacts.DefaultTokenTTLSeconds
	if req.TTL != nil {
		ttl = *req.TTL
		if ttl <= 0 || ttl > artifacts.MaxTokenTTLSeconds {
			Fail(c, BadRequest(fmt.Sprintf(`field "ttl" must be between 1 and %d seconds`, artifacts.MaxTokenTTLSeconds)))
			return
		}
	}
	link, err := s.linkedArtifact(c)
	if err != nil {
		Fail(c, err)
		return
	}
	tok, err := s.artifacts.CreateToken(c.Request.Context(), link.RepoName,
		artifacts.CreateTokenRequest{Scope: *req.Scope, TTLSeconds: ttl})
	if err != nil {
		s.artifactsFail(c, "create token", err)
		return
	}
	if tok.Token == "" {
		s.artifactsFail(c, "create token", &artifacts.APIError{
			StatusCode: http.StatusOK, Message: "upstream service error", Detail: "token result without a token"})
		return
	}
	expires := tok.ExpiresAt
	if expires.IsZero() {
		expires = s.now().Add(time.Duration(ttl) * time.Second)
	}
	remote := artifacts.StripCredentials(tok.RemoteURL)
	if remote == "" {
		remote = link.RemoteURL
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{
		"id": tok.ID, "token": tok.Token, "scope": *req.Scope, "ttl": ttl,
		"expires_at": expires.UTC(), "remote_url": remote, "cf_repo_name": link.RepoName,
	})
}
