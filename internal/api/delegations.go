package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/runloop"
	"github.com/moleculesai/molecule/internal/store"
)

// Delegation limits.
const (
	delegationTaskMax      = 100_000 // characters
	delegationKeyMax       = 255
	delegationTaskPreview  = 200
	delegationResultMax    = 65_536 // stored result, characters
	delegationResultPrev   = 500
	delegationErrorMax     = 500
	delegationStaleAfter   = a2aMaxTimeout + 5*time.Minute
	delegationSweepEvery   = time.Minute
	delegationInterruptMsg = "interrupted: the platform restarted before the delegation finished"
)

type delegateRequest struct {
	TargetID       *string `json:"target_id"`
	Task           *string `json:"task"`
	IdempotencyKey *string `json:"idempotency_key"`
}

// POST /workspaces/:id/delegate: hand a task to another workspace. The
// task is sent through the A2A proxy rules (access, budget) in the
// background, on a context that no client can cancel.
func (s *Server) delegate(c *gin.Context) {
	source := loadedWorkspace(c)
	// Fields are decoded one by one so that self-delegation is refused
	// before anything else about the body is judged (§7).
	var raw map[string]json.RawMessage
	if err := bindJSON(c, &raw); err != nil {
		Fail(c, err)
		return
	}
	var body delegateRequest
	tid, ok := raw["target_id"]
	if !ok || string(tid) == "null" {
		Fail(c, BadRequest(`field "target_id" is required`))
		return
	}
	if json.Unmarshal(tid, &body.TargetID) != nil {
		Fail(c, BadRequest(`field "target_id" must be a UUID string`))
		return
	}
	target, err := parseBodyUUID("target_id", *body.TargetID)
	if err != nil {
		Fail(c, err)
		return
	}
	if target == source.ID {
		Fail(c, BadRequest("self-delegation not permitted"))
		return
	}
	if t, ok := raw["task"]; ok && json.Unmarshal(t, &body.Task) != nil {
		Fail(c, BadRequest(`field "task" must be a string`))
		return
	}
	if k, ok := raw["idempotency_key"]; ok && json.Unmarshal(k, &body.IdempotencyKey) != nil {
		Fail(c, BadRequest(`field "idempotency_key" must be a string`))
		return
	}
	if body.Task == nil || strings.TrimSpace(*body.Task) == "" {
		Fail(c, BadRequest(`field "task" is required`))
		return
	}
	if err := checkText("task", *body.Task, delegationTaskMax); err != nil {
		Fail(c, err)
		return
	}
	key := ""
	if body.IdempotencyKey != nil {
		key = *body.IdempotencyKey
		if key == "" {
			Fail(c, BadRequest(`field "idempotency_key" must not be empty`))
			return
		}
		if err := checkText("idempotency_key", key, delegationKeyMax); err != nil {
			Fail(c, err)
			return
		}
	}
	ctx := c.Request.Context()
	if _, err := s.a2a.routes.Get(ctx, target); err != nil {
		if err == store.ErrNotFound {
			Fail(c, NotFound("target workspace not found"))
			return
		}
		Fail(c, err)
		return
	}
	d, created, err := s.store.CreateDelegation(ctx, &store.Delegation{
		ID: uuid.New(), SourceID: source.ID, TargetID: target, Task: *body.Task, IdempotencyKey: key,
	})
	if err != nil {
		if err == store.ErrNotFound {
			Fail(c, NotFound("target workspace not found"))
			return
		}
		Fail(c, err)
		return
	}
	if created {
		_, _ = s.events.Record(ctx, "DELEGATION_SENT", source.ID, gin.H{
			"delegation_id": d.ID, "source_id": d.SourceID, "target_id": d.TargetID,
			"task_preview": preview(d.Task, delegationTaskPreview),
		})
		tid := d.TargetID
		s.a2a.rec.Activity(store.Activity{WorkspaceID: d.SourceID, ActivityType: store.ActivityDelegation,
			Summary: "delegated to " + tid.String() + ": " + preview(d.Task, 120), TargetID: &tid,
			Details: mustJSON(gin.H{"delegation_id": d.ID, "status": store.DelegationPending}), CreatedAt: s.now()})
		s.a2a.wg.Add(1)
		go s.runDelegation(*d, logger(c))
	}
	// A repeated idempotency key answers exactly as the first request did.
	c.JSON(http.StatusAccepted, gin.H{"delegation_id": d.ID, "status": "delegated"})
}

// runDelegation sends one delegation through the proxy rules and records
// how it ended. It runs on the server's background context.
func (s *Server) runDelegation(d store.Delegation, log *slog.Logger) {
	defer s.a2a.wg.Done()
	ctx := s.a2a.bg
	msg, _ := json.Marshal(gin.H{
		"jsonrpc": "2.0", "id": uuid.NewString(), "method": "message/send",
		"params": gin.H{"message": gin.H{
			"role": "user", "messageId": uuid.NewString(),
			"parts":    []gin.H{{"kind": "text", "text": d.Task}},
			"metadata": gin.H{"delegation_id": d.ID, "source_workspace_id": d.SourceID},
		}},
	})
	source := d.SourceID
	dlog := s.log.With("delegation_id", d.ID)
	call := &a2aCall{caller: &source, target: d.TargetID, raw: msg, timeout: a2aDefaultTimeout,
		requestID: "delegation-" + d.ID.String(), log: func() *slog.Logger { return dlog }}
	call.admitted = func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.store.UpdateDelegation(uctx, d.ID, store.DelegationDispatched, "", ""); err != nil {
			call.log().Error("mark delegation dispatched", "err", err)
		}
	}
	out, took := s.a2aCall(ctx, call)
	s.a2aRecord(call, out, took)
	status, result, errMsg := delegationResult(out)
	if ctx.Err() != nil && out.err != nil {
		errMsg = delegationInterruptMsg
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	moved, err := s.store.UpdateDelegation(uctx, d.ID, status, result, errMsg)
	if err != nil {
		log.Error("record delegation result", "delegation_id", d.ID, "err", err)
		return
	}
	if !moved {
		return // the sweep already closed it
	}
	payload := gin.H{"delegation_id": d.ID, "source_id": d.SourceID, "target_id": d.TargetID, "status": status}
	typ := "DELEGATION_COMPLETE"
	if status == store.DelegationFailed {
		typ = "DELEGATION_FAILED"
		payload["error"] = errMsg
	} else {
		payload["result_preview"] = preview(result, delegationResultPrev)
	}
	_, _ = s.events.Record(uctx, typ, d.SourceID, payload)
	tid := d.TargetID
	summary := fmt.Sprintf("delegation to %s %s", tid, status)
	s.a2a.rec.Activity(store.Activity{WorkspaceID: d.SourceID, ActivityType: store.ActivityDelegation,
		Summary: summary, TargetID: &tid, Details: mustJSON(payload), CreatedAt: s.now()})
}

// delegationResult turns a proxy outcome into a delegation's end state.
// An agent's JSON-RPC error message is the agent's answer and is kept
// (cut short); platform failures carry the platform's own message.
func delegationResult(out *a2aOutcome) (status, result, errMsg string) {
	if out.err != nil {
		return store.DelegationFailed, "", out.err.Message
	}
	if out.status < 200 || out.status > 299 {
		return store.DelegationFailed, "", fmt.Sprintf("agent answered HTTP %d", out.status)
	}
	var rpc struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out.body, &rpc); err != nil {
		return store.DelegationFailed, "", "agent answer is not JSON-RPC"
	}
	if rpc.Error != nil {
		return store.DelegationFailed, "", preview(fmt.Sprintf("agent error %d: %s", rpc.Error.Code, sanitize(rpc.Error.Message)), delegationErrorMax)
	}
	text := resultText(rpc.Result)
	if text == "" {
		text = string(rpc.Result)
	}
	return store.DelegationCompleted, preview(sanitize(text), delegationResultMax), ""
}

// resultText collects the text parts of an A2A result: a Message
// (parts), a Task (status.message.parts, artifacts[].parts).
func resultText(raw json.RawMessage) string {
	type part struct {
		Kind string `json:"kind"`
		Text string `json:"text"`
	}
	var r struct {
		Parts  []part `json:"parts"`
		Status struct {
			Message struct {
				Parts []part `json:"parts"`
			} `json:"message"`
		} `json:"status"`
		Artifacts []struct {
			Parts []part `json:"parts"`
		} `json:"artifacts"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return ""
	}
	var b strings.Builder
	add := func(ps []part) {
		for _, p := range ps {
			if p.Text != "" {
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(p.Text)
			}
		}
	}
	add(r.Parts)
	add(r.Status.Message.Parts)
	for _, a := range r.Artifacts {
		add(a.Parts)
	}
	return b.String()
}

// sanitize drops NULs and invalid UTF-8 (Postgres text holds neither).
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// preview cuts s to at most n characters.
func preview(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

// delegationView is a delegation as listed (§7).
type delegationView struct {
	DelegationID  uuid.UUID `json:"delegation_id"`
	TargetID      uuid.UUID `json:"target_id"`
	Status        string    `json:"status"`
	TaskPreview   string    `json:"task_preview"`
	ResultPreview string    `json:"result_preview"`
	Error         string    `json:"error"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// GET /workspaces/:id/delegations: the workspace's delegations, newest first.
func (s *Server) listDelegations(c *gin.Context) {
	ws := loadedWorkspace(c)
	limit, offset, err := page(c, 100, 500)
	if err != nil {
		Fail(c, err)
		return
	}
	rows, err := s.store.ListDelegations(c.Request.Context(), ws.ID, limit, offset, delegationTaskPreview, delegationResultPrev)
	if err != nil {
		Fail(c, err)
		return
	}
	out := make([]delegationView, len(rows))
	for i, d := range rows {
		out[i] = delegationView{DelegationID: d.ID, TargetID: d.TargetID, Status: d.Status, TaskPreview: d.Task,
			ResultPreview: d.Result, Error: d.Error, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	}
	c.JSON(http.StatusOK, out)
}

// delegationSweepLoop fails delegations whose worker died with a restart:
// open for longer than the longest possible call. Each row is claimed by
// one replica.
func delegationSweepLoop(s *Server) runloop.Loop {
	return runloop.Loop{Name: "delegation-sweep", Interval: delegationSweepEvery, Fn: func(ctx context.Context) error {
		rows, err := s.store.FailStaleDelegations(ctx, delegationStaleAfter, delegationInterruptMsg)
		for _, d := range rows {
			_, _ = s.events.Record(ctx, "DELEGATION_FAILED", d.SourceID, gin.H{
				"delegation_id": d.ID, "source_id": d.SourceID, "target_id": d.TargetID,
				"status": store.DelegationFailed, "error": d.Error,
			})
		}
		return err
	}}
}
