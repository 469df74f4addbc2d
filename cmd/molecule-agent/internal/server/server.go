// Package server is the agent's HTTP face: A2A JSON-RPC 2.0 (message/send)
// at POST / and /a2a, the agent card, and /health.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/cmd/molecule-agent/internal/llm"
)

// JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
	// CodeLLMFailed is in the implementation-defined server error range.
	CodeLLMFailed = -32000
)

// MaxBody caps a request body, matching the platform proxy's 1 MiB.
const MaxBody = 1 << 20

// Card is the A2A agent card served at /.well-known/agent-card.json and sent
// at registration.
type Card struct {
	Name               string       `json:"name"`
	Description        string       `json:"description"`
	URL                string       `json:"url"`
	Version            string       `json:"version"`
	ProtocolVersion    string       `json:"protocolVersion"`
	PreferredTransport string       `json:"preferredTransport"`
	Capabilities       Capabilities `json:"capabilities"`
	DefaultInputModes  []string     `json:"defaultInputModes"`
	DefaultOutputModes []string     `json:"defaultOutputModes"`
	Skills             []CardSkill  `json:"skills"`
}

// Capabilities advertises optional A2A features; this agent has none.
type Capabilities struct {
	Streaming         bool `json:"streaming"`
	PushNotifications bool `json:"pushNotifications"`
}

// CardSkill is one skill on the card.
type CardSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
}

// Options configure a Server.
type Options struct {
	Card      Card
	Responder llm.Responder
	State     *State
	Logger    *slog.Logger
	Model     string
	System    string
	MaxTokens int
	// Prices for metering, USD per million tokens.
	InputUSDPerMTok, OutputUSDPerMTok float64
}

// Server handles the agent's HTTP routes.
type Server struct {
	o   Options
	mux *http.ServeMux
}

// New builds the handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.State == nil {
		o.State = NewState(nil)
	}
	if o.Card.Skills == nil {
		o.Card.Skills = []CardSkill{}
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /{$}", s.handleRPC)
	s.mux.HandleFunc("POST /a2a", s.handleRPC)
	s.mux.HandleFunc("GET /.well-known/agent-card.json", s.handleCard)
	// The pre-0.3 A2A location, still probed by some clients.
	s.mux.HandleFunc("GET /.well-known/agent.json", s.handleCard)
	s.mux.HandleFunc("GET /health", s.handleHealth)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// GET /.well-known/agent-card.json
func (s *Server) handleCard(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Card)
}

// GET /health
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	snap := s.o.State.Snapshot()
	writeJSON(w, http.StatusOK, map[string]any{
		"status":       "ok",
		"provider":     s.o.Responder.Provider(),
		"active_tasks": snap.ActiveTasks,
	})
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// Part is an A2A message part. Only text parts carry meaning here; "type" is
// accepted as the pre-0.3 spelling of "kind".
type Part struct {
	Kind string `json:"kind"`
	Type string `json:"type,omitempty"`
	Text string `json:"text"`
}

// Message is an A2A message.
type Message struct {
	Kind      string `json:"kind,omitempty"`
	Role      string `json:"role"`
	Parts     []Part `json:"parts"`
	MessageID string `json:"messageId"`
	ContextID string `json:"contextId,omitempty"`
	TaskID    string `json:"taskId,omitempty"`
}

// Usage is the token usage the platform meters (CONTRACT §6).
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Result is message/send's answer: an agent message plus usage.
type Result struct {
	Message
	Usage Usage `json:"usage"`
}

type sendParams struct {
	Message *Message `json:"message"`
}

// POST / and POST /a2a
func (s *Server) handleRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, rpcResponse{JSONRPC: "2.0", ID: nullID,
				Error: &rpcError{CodeInvalidRequest, "request body too large"}})
			return
		}
		writeRPCError(w, nullID, CodeParseError, "parse error")
		return
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		// Batches are valid JSON-RPC but nothing on the platform sends them.
		if !json.Valid(trimmed) {
			writeRPCError(w, nullID, CodeParseError, "parse error")
			return
		}
		writeRPCError(w, nullID, CodeInvalidRequest, "batch requests are not supported")
		return
	}
	var req rpcRequest
	if err := json.Unmarshal(trimmed, &req); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(trimmed) {
			writeRPCError(w, nullID, CodeParseError, "parse error")
			return
		}
		writeRPCError(w, nullID, CodeInvalidRequest, "invalid request")
		return
	}
	id, notification := req.ID, req.ID == nil
	if !validID(id) {
		writeRPCError(w, nullID, CodeInvalidRequest, "invalid request id")
		return
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		writeRPCError(w, idOrNull(id), CodeInvalidRequest, "invalid request")
		return
	}

	var resp rpcResponse
	switch req.Method {
	case "message/send":
		resp = s.messageSend(r.Context(), req.Params)
	default:
		resp = rpcResponse{Error: &rpcError{CodeMethodNotFound, "method not found"}}
	}
	if notification {
		// JSON-RPC: a request without an id gets no response body.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	resp.JSONRPC, resp.ID = "2.0", id
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) messageSend(ctx context.Context, raw json.RawMessage) rpcResponse {
	invalid := func(msg string) rpcResponse {
		return rpcResponse{Error: &rpcError{CodeInvalidParams, msg}}
	}
	if len(raw) == 0 || string(raw) == "null" {
		return invalid("params.message is required")
	}
	var p sendParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return invalid("params must be an object with a message")
	}
	if p.Message == nil {
		return invalid("params.message is required")
	}
	m := p.Message
	if m.Role != "user" && m.Role != "agent" {
		return invalid(`params.message.role must be "user" or "agent"`)
	}
	if len(m.Parts) == 0 {
		return invalid("params.message.parts must not be empty")
	}
	var texts []string
	for _, part := range m.Parts {
		kind := part.Kind
		if kind == "" {
			kind = part.Type
		}
		if kind == "text" && part.Text != "" {
			texts = append(texts, part.Text)
		}
	}
	if len(texts) == 0 {
		return invalid("params.message has no text part")
	}
	text := strings.Join(texts, "\n")

	end := s.o.State.Begin(text)
	reply, err := s.o.Responder.Respond(ctx, llm.Request{
		Model: s.o.Model, System: s.o.System, MaxTokens: s.o.MaxTokens, Text: text,
	})
	end(err)
	if err != nil {
		// Logged with our own error text only: llm errors never carry the
		// provider's body or the key.
		s.o.Logger.Warn("llm call failed", "provider", s.o.Responder.Provider(), "error", err)
		return rpcResponse{Error: &rpcError{CodeLLMFailed, "the agent could not produce an answer"}}
	}
	if s.o.Responder.Metered() {
		s.o.State.AddSpend(reply.InputTokens, reply.OutputTokens, s.o.InputUSDPerMTok, s.o.OutputUSDPerMTok)
	}
	return rpcResponse{Result: Result{
		Message: Message{
			Kind:      "message",
			Role:      "agent",
			Parts:     []Part{{Kind: "text", Text: reply.Text}},
			MessageID: uuid.NewString(),
			ContextID: m.ContextID,
			TaskID:    m.TaskID,
		},
		Usage: Usage{InputTokens: reply.InputTokens, OutputTokens: reply.OutputTokens},
	}}
}

var nullID = json.RawMessage("null")

// validID: JSON-RPC ids are strings, numbers or null (absent = notification).
func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	switch t := bytes.TrimSpace(id); {
	case len(t) == 0:
		return false
	case t[0] == '"', t[0] == '-', t[0] >= '0' && t[0] <= '9', string(t) == "null":
		return true
	}
	return false
}

func idOrNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return nullID
	}
	return id
}

func writeRPCError(w http.ResponseWriter, id json.RawMessage, code int, msg string) {
	writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", ID: id, Error: &rpcError{code, msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
