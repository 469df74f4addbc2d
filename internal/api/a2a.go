package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/moleculesai/molecule/internal/a2a"
	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// Limits of the A2A proxy (§6).
const (
	a2aMaxRequest      = 1 << 20  // 1 MiB in
	a2aMaxResponse     = 10 << 20 // 10 MiB out
	a2aDefaultTimeout  = 300 * time.Second
	a2aMaxTimeout      = 1800 * time.Second
	a2aCacheTTL        = time.Second // other replicas see a change within it
	a2aRetryNoURL      = "10"
	a2aRetryRestarting = "15"
	// a2aEventBodyMax bounds the agent answer carried by A2A_RESPONSE.
	a2aEventBodyMax = 256 << 10
)

// a2aRoute is a cached route with its URL already checked against the
// agent-URL policy's shape rules.
type a2aRoute struct {
	store.A2ARoute
	urlErr error
	target a2a.Target // the parsed URL, when urlErr is nil
}

// a2aState is the proxy's cached view of workspaces and its background
// machinery. Routes (URL, status, ancestry) and budget state are cached
// for a2aCacheTTL with refresh-ahead, so the steady-state call path makes
// no database query; a change on this replica invalidates at once
// (InvalidateA2A), other replicas converge within the TTL.
type a2aState struct {
	routes  *a2a.Cache[uuid.UUID, a2aRoute]
	budgets *a2a.Cache[uuid.UUID, store.BudgetState]
	// upstream calls agents (a pooled HTTP/1.1 client on the caller's
	// goroutine; https through an http.Client on the policy's transport).
	upstream *a2a.Upstream
	policy   a2a.Policy
	prices   a2a.Prices
	rec      *a2a.Recorder

	budgetErrors prometheus.Counter

	// bg outlives requests: delegations run on it so a client hanging up
	// cancels nothing. It ends when the server stops.
	bg       context.Context
	cancelBg context.CancelFunc
	wg       sync.WaitGroup
}

func newA2AState(s *Server) *a2aState {
	st := &a2aState{
		policy: a2a.PolicyFor(s.cfg.AgentNetwork),
		prices: a2a.Prices{InputPerMTok: s.cfg.InputPricePerMTok, OutputPerMTok: s.cfg.OutputPricePerMTok},
		budgetErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "molecule_a2a_budget_check_errors_total",
			Help: "Budget checks that could not read the database; the call went ahead.",
		}),
	}
	st.upstream = a2a.NewUpstream(st.policy, &http.Client{
		Transport: st.policy.Transport(),
		// An agent's redirect is its answer, passed back as it came; the
		// proxy never follows it somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, a2a.UpstreamOptions{})
	st.routes = &a2a.Cache[uuid.UUID, a2aRoute]{
		TTL: a2aCacheTTL, Keep: a2a.KeepErr(store.ErrNotFound), Max: 100_000,
		Load: func(ctx context.Context, id uuid.UUID) (a2aRoute, error) {
			r, err := s.store.A2ARoute(ctx, id)
			if err != nil {
				return a2aRoute{}, err
			}
			out := a2aRoute{A2ARoute: r}
			if r.URL != "" {
				out.urlErr = st.policy.CheckURL(r.URL)
				if out.urlErr == nil {
					out.target, out.urlErr = a2a.ParseTarget(r.URL)
				}
			}
			return out, nil
		},
	}
	st.budgets = &a2a.Cache[uuid.UUID, store.BudgetState]{
		TTL: a2aCacheTTL, Max: 100_000, Keep: a2a.KeepErr(store.ErrNotFound),
		Load: func(ctx context.Context, id uuid.UUID) (store.BudgetState, error) {
			return s.store.BudgetState(ctx, id, monthStart(s.now()))
		},
	}
	st.rec = a2a.NewRecorder(s.store, s.log, s.registry, st.prices, func(ids []uuid.UUID) { st.budgets.Invalidate(ids...) })
	st.bg, st.cancelBg = context.WithCancel(context.Background())
	s.registry.MustRegister(st.budgetErrors)
	return st
}

// InvalidateA2A drops the proxy's cached route and budget state of these
// workspaces. Call it after changing a workspace's url, status, budget or
// reported spend so the change applies at once on this replica (other
// replicas see it within a second).
func (s *Server) InvalidateA2A(ids ...uuid.UUID) {
	s.a2a.routes.Invalidate(ids...)
	s.a2a.budgets.Invalidate(ids...)
}

// InvalidateA2ATree drops every cached route: call it after a change to
// the tree (a new parent, a removal), which alters many ancestries.
func (s *Server) InvalidateA2ATree() { s.a2a.routes.InvalidateAll() }

// RecordActivity queues activity-log rows (cron runs, etc.); it never
// blocks and the rows are written in batches. Text fields must be valid
// UTF-8 without NUL and Details valid JSON: a row Postgres refuses fails
// its whole batch.
func (s *Server) RecordActivity(rows ...store.Activity) { s.a2a.rec.Activity(rows...) }

// RunBackground runs the proxy's batch writer and the delegation sweep
// until ctx ends, then lets running delegations end and writes what is
// left. internal/app runs it for the server's lifetime.
func (s *Server) RunBackground(ctx context.Context) {
	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan struct{})
	go func() { s.a2a.rec.Run(recCtx); close(recDone) }()
	if s.loops != nil {
		s.loops.Start(ctx, delegationSweepLoop(s))
	}
	<-ctx.Done()
	s.a2a.cancelBg()
	waited := make(chan struct{})
	go func() { s.a2a.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		s.log.Warn("delegations still running at shutdown")
	}
	stopRec()
	<-recDone
	s.a2a.upstream.CloseIdle()
}

// logText makes client text safe for the activity log (Postgres text
// holds neither NUL nor invalid UTF-8) and bounds it.
func logText(s string, n int) string {
	if len(s) > 4*n {
		s = s[:4*n]
	}
	return preview(sanitize(s), n)
}

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// POST /workspaces/:id/a2a: forward a JSON-RPC request to the agent of :id.
//
// This route is not in the WorkspaceAuth group: any workspace token that
// may talk to :id (§6) is a caller, and the route must not load the
// workspace from the database on every call.
func (s *Server) proxyA2A(c *gin.Context) {
	target, err := parseUUID(c.Param("id"))
	if err != nil {
		Fail(c, err)
		return
	}
	p := principal(c)
	var caller *uuid.UUID
	switch {
	case p.Kind == auth.Workspace:
		id := p.WorkspaceID
		caller = &id
		if h := c.GetHeader("X-Workspace-ID"); h != "" {
			if hid, err := uuid.Parse(strings.TrimSpace(h)); err != nil || hid != id {
				Fail(c, Forbidden("X-Workspace-ID does not match the credential's workspace"))
				return
			}
		}
	case p.IsAdmin():
		// The user: no workspace caller.
	default:
		Fail(c, Forbidden("this credential may not call agents"))
		return
	}
	timeout, err := parseTimeout(c.GetHeader("X-Timeout"))
	if err != nil {
		Fail(c, err)
		return
	}
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			Fail(c, tooLarge(mbe.Limit))
			return
		}
		Fail(c, BadRequest("could not read request body"))
		return
	}
	call := &a2aCall{caller: caller, target: target, raw: raw, timeout: timeout,
		requestID: c.GetString(requestIDContextKey), log: lazyLogger(c)}
	out, took := s.a2aCall(c.Request.Context(), call)
	if out.err != nil {
		if out.retryAfter != "" {
			c.Header("Retry-After", out.retryAfter)
		}
		Fail(c, out.err)
	} else {
		ctype := out.contentType
		if ctype == "" {
			ctype = "application/json"
		}
		// Send the answer now; metering and logging happen after the
		// caller has it.
		c.Header("Content-Length", strconv.Itoa(len(out.body)))
		c.Data(out.status, ctype, out.body)
		c.Writer.Flush()
	}
	s.a2aRecord(call, out, took)
}

// parseTimeout reads X-Timeout: seconds (a decimal is allowed), default
// 300, values above 1800 clamped; zero, negative or non-numeric → 400.
func parseTimeout(h string) (time.Duration, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return a2aDefaultTimeout, nil
	}
	f, err := strconv.ParseFloat(h, 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0, BadRequest("X-Timeout must be a positive number of seconds")
	}
	if f >= a2aMaxTimeout.Seconds() {
		return a2aMaxTimeout, nil
	}
	return time.Duration(f * float64(time.Second)), nil
}

// a2aCall is one proxied call, from the HTTP route or a delegation.
type a2aCall struct {
	caller    *uuid.UUID // nil: the user (an admin principal)
	target    uuid.UUID
	raw       []byte // the request body as received
	timeout   time.Duration
	requestID string
	log       func() *slog.Logger // built on first use
	method    string              // set by a2aAdmit
	// admitted, when set, runs once access, budget and routing passed,
	// just before the agent is called (delegations mark themselves
	// dispatched there).
	admitted func()
}

// a2aOutcome is the answer: the agent's (status, body) or the platform's
// error.
type a2aOutcome struct {
	err         *Error
	retryAfter  string
	status      int
	contentType string
	body        []byte
	method      string
	unknown     bool // no such target: nothing to record
}

func (o *a2aOutcome) code() int {
	if o.err != nil {
		return o.err.Status
	}
	return o.status
}

// a2aCall runs the rules of §6 in order: the target exists, the caller may
// talk to it, the body is JSON, the budget allows it, it has a URL; then
// forwards. The caller records the outcome with a2aRecord once the answer
// is on its way, unless the target is unknown (out.unknown).
func (s *Server) a2aCall(ctx context.Context, call *a2aCall) (*a2aOutcome, time.Duration) {
	start := time.Now()
	route, err := s.a2a.routes.Get(ctx, call.target)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &a2aOutcome{unknown: true, err: NotFound("workspace not found")}, time.Since(start)
		}
		return &a2aOutcome{unknown: true, err: classify(err)}, time.Since(start)
	}
	out := s.a2aAdmit(ctx, call, route)
	if out == nil {
		if call.admitted != nil {
			call.admitted()
		}
		out = s.a2aForward(ctx, call, route)
	}
	return out, time.Since(start)
}

// a2aAdmit checks access, shape, budget and routing; nil means go ahead.
// On success call.raw has become the JSON-RPC request to send.
func (s *Server) a2aAdmit(ctx context.Context, call *a2aCall, route a2aRoute) *a2aOutcome {
	if call.caller != nil && *call.caller != route.ID {
		from, err := s.a2a.routes.Get(ctx, *call.caller)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return &a2aOutcome{err: classify(err)}
		}
		if !a2a.CanCommunicate(from.Chain, route.Chain) {
			return &a2aOutcome{err: Forbidden("access denied")}
		}
	}
	body, method, err := a2a.Normalize(call.raw)
	if err != nil {
		return &a2aOutcome{err: BadRequest("invalid JSON: the body must be a JSON object")}
	}
	call.raw, call.method = body, logText(method, 128)
	if b, err := s.a2a.budgets.Get(ctx, route.ID); err != nil {
		// A budget we cannot read does not block the call (§6).
		s.a2a.budgetErrors.Inc()
		call.log().Error("a2a budget check failed; call allowed", "workspace_id", route.ID, "err", err)
	} else if b.Exceeded() {
		return &a2aOutcome{method: method, err: newErr(http.StatusPaymentRequired, CodeBudgetExceeded, "workspace budget limit exceeded")}
	}
	if route.URL == "" {
		return &a2aOutcome{method: method, retryAfter: a2aRetryNoURL, err: Unavailable("workspace agent unavailable")}
	}
	// Shape check of the stored URL (an IP literal is judged now); the
	// resolved address of a hostname is judged by the dialer.
	if err := route.urlErr; err != nil {
		return &a2aOutcome{method: method, err: &Error{Status: http.StatusBadGateway, Code: CodeUpstream,
			Message: "workspace agent address is not allowed", Err: err}}
	}
	return nil
}

// a2aForward sends the call and reads the answer within the deadline.
func (s *Server) a2aForward(ctx context.Context, call *a2aCall, route a2aRoute) *a2aOutcome {
	method := call.method
	ctx, cancel := context.WithTimeout(ctx, call.timeout)
	defer cancel()
	h := make(http.Header, 4)
	h["Content-Type"] = jsonHeader
	h["Accept"] = jsonHeader
	if call.caller != nil {
		h["X-Workspace-Id"] = []string{call.caller.String()}
	}
	if call.requestID != "" {
		h["X-Request-Id"] = []string{call.requestID}
	}
	ans, err := s.a2a.upstream.Post(ctx, route.target, h, call.raw, a2aMaxResponse)
	if errors.Is(err, a2a.ErrAnswerTooLarge) {
		return &a2aOutcome{method: method, err: newErr(http.StatusBadGateway, CodeUpstream, "workspace agent answer exceeds 10 MiB")}
	}
	if err != nil {
		return s.a2aFailure(ctx, call, route, method, err)
	}
	return &a2aOutcome{method: method, status: ans.Status, contentType: ans.ContentType, body: ans.Body}
}

// jsonHeader is shared by every call's header map; nothing modifies it.
var jsonHeader = []string{"application/json"}

// a2aFailure classifies a failed call: our deadline → 504; the caller
// gone → nothing to answer; a refused address → 502; otherwise the agent
// is unreachable → 502, unless its container is found dead, which takes
// the workspace offline, restarts it and answers 503.
func (s *Server) a2aFailure(ctx context.Context, call *a2aCall, route a2aRoute, method string, err error) *a2aOutcome {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &a2aOutcome{method: method, err: &Error{Status: http.StatusGatewayTimeout, Code: CodeUpstream,
			Message: "workspace agent did not answer in time", Err: err}}
	case ctx.Err() != nil:
		return &a2aOutcome{method: method, err: &Error{Status: 499, Code: CodeUpstream, Message: "caller went away", Err: ctx.Err()}}
	case errors.Is(err, a2a.ErrRefusedAddress):
		return &a2aOutcome{method: method, err: &Error{Status: http.StatusBadGateway, Code: CodeUpstream,
			Message: "workspace agent address is not allowed", Err: err}}
	}
	unreachable := &a2aOutcome{method: method, err: &Error{Status: http.StatusBadGateway, Code: CodeUpstream,
		Message: "workspace agent unreachable", Err: err}}
	if route.External {
		return unreachable // no container of ours to look at
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	running, rerr := s.lifecycle.IsRunning(cctx, route.ID)
	if running || rerr != nil {
		// Alive, or unknown: a transient provisioner error never restarts.
		return unreachable
	}
	changed, uerr := s.store.MarkWorkspaceOfflineIfLive(cctx, route.ID)
	if uerr != nil {
		call.log().Error("mark dead agent's workspace offline", "workspace_id", route.ID, "err", uerr)
	}
	s.InvalidateA2A(route.ID)
	if changed {
		_, _ = s.events.Record(cctx, "WORKSPACE_OFFLINE", route.ID, gin.H{"reason": "agent container not running"})
		if perr := s.lifecycle.Provision(cctx, route.ID); perr != nil {
			call.log().Error("restart dead agent", "workspace_id", route.ID, "err", perr)
		}
	}
	return &a2aOutcome{method: method, retryAfter: a2aRetryRestarting, err: Unavailable("workspace agent unavailable")}
}

// a2aRecord meters a successful answer and logs the call, all queued for
// the batch writer; an A2A_RESPONSE event goes out for the user's calls.
func (s *Server) a2aRecord(call *a2aCall, out *a2aOutcome, took time.Duration) {
	if out.unknown {
		return
	}
	status := out.code()
	ok := out.err == nil && status >= 200 && status < 300
	s.a2a.rec.Call(a2a.Call{Caller: call.caller, Target: call.target, Method: out.method, Status: status,
		Duration: took, At: s.now(), Metered: ok, Answer: out.body})
	target := call.target
	ms := took.Milliseconds()
	if call.caller == nil {
		payload := gin.H{"method": out.method, "status_code": status, "duration_ms": ms}
		if out.err != nil {
			payload["error"] = out.err.Message
		} else if len(out.body) <= a2aEventBodyMax && json.Valid(out.body) {
			payload["response"] = json.RawMessage(out.body)
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s.events.Broadcast(ctx, "A2A_RESPONSE", target, payload)
		}()
	}
}
