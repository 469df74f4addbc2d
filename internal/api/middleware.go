package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// Context keys: only the request's principal, its logger and the loaded
// path resource are stashed in the gin context.
const (
	principalKey = "principal"
	authErrKey   = "auth_error"
	loggerKey    = "logger"
	workspaceKey = "workspace"
	bodyKey      = "original_body"
)

// SessionCookie is the canvas session cookie (§1).
const SessionCookie = "molecule_session"

// requestLogger is the request's logger, built on first use: most
// requests log nothing, and slog.With pre-formats its attributes.
type requestLogger struct {
	base *slog.Logger
	id   string
	once sync.Once
	l    *slog.Logger
}

func (r *requestLogger) get() *slog.Logger {
	r.once.Do(func() { r.l = r.base.With("request_id", r.id) })
	return r.l
}

// lazyLogger returns a function giving the request's logger, for work
// that may or may not log.
func lazyLogger(c *gin.Context) func() *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*requestLogger).get
	}
	return slog.Default
}

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*requestLogger).get()
	}
	return slog.Default()
}

// principal returns the request's principal (None when unauthenticated).
func principal(c *gin.Context) auth.Principal {
	if p, ok := c.Get(principalKey); ok {
		return p.(auth.Principal)
	}
	return auth.Principal{}
}

// requestID echoes a sane client X-Request-ID or makes one, sets it on the
// response, and gives the request a logger carrying it.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDContextKey, id)
	c.Header("X-Request-ID", id)
	c.Set(loggerKey, &requestLogger{base: s.log, id: id})
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

// recovery turns a panic into the opaque 500 and logs the stack.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			logger(c).Error("panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				Fail(c, fmt.Errorf("panic: %v", r))
			}
		}
	}()
	c.Next()
}

// observe records request metrics by route and logs the request.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.metrics.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(c.Request.Method, route).Observe(elapsed.Seconds())
	lvl := slog.LevelDebug
	if status >= 500 {
		lvl = slog.LevelWarn
	}
	if !s.log.Enabled(c.Request.Context(), lvl) {
		return
	}
	logger(c).Log(c.Request.Context(), lvl, "request", "method", c.Request.Method, "route", route,
		"status", status, "duration_ms", elapsed.Milliseconds())
}

// limitBody caps request bodies at the server default. Routes that accept
// more re-wrap the original body with bodyLimit. A declared Content-Length
// over the cap is refused at once; a chunked body over it fails on read.
func (s *Server) limitBody(c *gin.Context) {
	c.Set(bodyKey, c.Request.Body)
	if !applyLimit(c, s.cfg.BodyLimit) {
		return
	}
	c.Next()
}

// bodyLimit overrides the body cap for one route.
func bodyLimit(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !applyLimit(c, n) {
			return
		}
		c.Next()
	}
}

func applyLimit(c *gin.Context, n int64) bool {
	if c.Request.ContentLength > n {
		Fail(c, tooLarge(n))
		return false
	}
	orig, _ := c.Get(bodyKey)
	if body, ok := orig.(io.ReadCloser); ok && body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, body, n)
	}
	return true
}

// identify finds at most one principal and never rejects (tier 1). A bearer,
// when present, decides alone: a bad bearer is not rescued by a cookie.
func (s *Server) identify(c *gin.Context) {
	ctx := c.Request.Context()
	var p auth.Principal
	var ok bool
	var err error
	if h := c.GetHeader("Authorization"); h != "" {
		if token, found := bearerToken(h); found {
			p, ok, err = s.auth.Bearer(ctx, token)
		}
	} else if cookie, cerr := c.Cookie(SessionCookie); cerr == nil && cookie != "" {
		p, ok, err = s.auth.Session(ctx, cookie)
		if ok && unsafeMethod(c.Request.Method) && !s.sameOrigin(c.Request) {
			// A cookie rides along on cross-site requests: an unsafe method
			// from another origin is never the canvas.
			c.Set(authErrKey, Forbidden("cross-origin request refused"))
			ok = false
		}
	}
	if err != nil {
		c.Set(authErrKey, err)
	}
	if ok {
		c.Set(principalKey, p)
	}
	c.Next()
}

func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin implements §1: Origin equals the server's own origin or, when
// Origin is absent, Referer is exactly that origin or starts with it
// followed by "/". The server's origin is the configured public URL's, or
// the request's own scheme and Host (which a browser always sets to the
// server it is talking to).
func (s *Server) sameOrigin(r *http.Request) bool {
	own := s.ownOrigins(r)
	if o := r.Header.Get("Origin"); o != "" {
		for _, want := range own {
			if o == want {
				return true
			}
		}
		return false
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return false
	}
	for _, want := range own {
		if ref == want || strings.HasPrefix(ref, want+"/") {
			return true
		}
	}
	return false
}

func (s *Server) ownOrigins(r *http.Request) []string {
	var out []string
	if s.cfg.PublicURL != "" {
		if u, err := url.Parse(s.cfg.PublicURL); err == nil {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return append(out, scheme+"://"+r.Host)
}

// authFailure answers the request when tier 1 found no usable principal:
// 503 if the credential store was down (never fail open), 403 for a refused
// cross-origin cookie, else 401.
func authFailure(c *gin.Context) bool {
	if e, ok := c.Get(authErrKey); ok {
		Fail(c, e.(error))
		return true
	}
	if _, ok := c.Get(principalKey); !ok {
		Fail(c, Unauthorized("missing or invalid credentials"))
		return true
	}
	return false
}

// requireAdmin passes admin, org token and canvas session (tier 2).
func requireAdmin(c *gin.Context) {
	if authFailure(c) {
		return
	}
	if !principal(c).IsAdmin() {
		Fail(c, Forbidden("admin credentials required"))
		return
	}
	c.Next()
}

// requireWorkspace passes any workspace token; the handler checks which.
func requireWorkspace(c *gin.Context) {
	if authFailure(c) {
		return
	}
	if principal(c).Kind != auth.Workspace {
		Fail(c, Forbidden("a workspace token is required"))
		return
	}
	c.Next()
}

// requireAny passes any authenticated principal.
func requireAny(c *gin.Context) {
	if authFailure(c) {
		return
	}
	c.Next()
}

// workspaceAuth passes admin principals and the token of :id (tier 2), then
// loads the workspace, answering 400 for a malformed id and 404 for an
// unknown or removed one (tier 3).
func (s *Server) workspaceAuth(c *gin.Context) {
	if authFailure(c) {
		return
	}
	id, err := parseUUID(c.Param("id"))
	if err != nil {
		Fail(c, err)
		return
	}
	p := principal(c)
	if !p.IsAdmin() && !p.IsWorkspace(id) {
		Fail(c, Forbidden("this credential may not act on this workspace"))
		return
	}
	ws, err := s.store.GetWorkspace(c.Request.Context(), id)
	if err != nil {
		if err == store.ErrNotFound {
			Fail(c, NotFound("workspace not found"))
			return
		}
		Fail(c, err)
		return
	}
	c.Set(workspaceKey, ws)
	c.Next()
}

// loadedWorkspace returns the workspace loaded by workspaceAuth.
func loadedWorkspace(c *gin.Context) *store.Workspace {
	return c.MustGet(workspaceKey).(*store.Workspace)
}

// pathUUID parses a path parameter that holds an id.
func pathUUID(c *gin.Context, name string) (uuid.UUID, error) { return parseUUID(c.Param(name)) }

// rateLimiter is a fixed one-minute window per principal (or client address
// when unauthenticated). Off when MOLECULE_RATE_LIMIT is 0.
type rateLimiter struct {
	limit  int
	mu     sync.Mutex
	window time.Time
	counts map[string]int
	now    func() time.Time
}

func (r *rateLimiter) handle(c *gin.Context) {
	key := c.ClientIP()
	if p := principal(c); p.Kind != auth.None {
		key = p.Kind.String() + ":" + p.TokenID.String() + ":" + p.WorkspaceID.String()
	}
	r.mu.Lock()
	now := r.now()
	if now.Sub(r.window) >= time.Minute {
		r.window = now.Truncate(time.Minute)
		clear(r.counts)
	}
	r.counts[key]++
	over := r.counts[key] > r.limit
	retry := int(r.window.Add(time.Minute).Sub(now).Seconds()) + 1
	r.mu.Unlock()
	if over {
		c.Header("Retry-After", strconv.Itoa(retry))
		Fail(c, newErr(http.StatusTooManyRequests, CodeRateLimited, "rate limit exceeded"))
		return
	}
	c.Next()
}
