// Package llm turns a user message into an answer: through the Anthropic
// Messages API, an OpenAI-compatible chat completions API, or a deterministic
// echo when no provider is configured.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Request is one single-turn completion.
type Request struct {
	Model     string
	System    string
	MaxTokens int
	Text      string // the user's message
}

// Reply is the answer and the tokens it cost.
type Reply struct {
	Text         string
	InputTokens  int64
	OutputTokens int64
}

// Responder answers a Request.
//
// Contract: safe for concurrent use; honours ctx cancellation; errors are
// ErrUpstream/ErrBadResponse wrappers whose text never contains the
// provider's response body or credentials, so they may be shown to callers
// and logged.
type Responder interface {
	Respond(ctx context.Context, req Request) (Reply, error)
	// Provider names the backend ("anthropic", "openai", "echo") for logs.
	Provider() string
	// Metered reports whether replies cost money (echo does not).
	Metered() bool
}

// Sentinel errors.
var (
	// ErrUpstream: the provider could not be reached or answered non-2xx.
	ErrUpstream = errors.New("llm provider request failed")
	// ErrBadResponse: the provider answered 2xx with a body we can't use.
	ErrBadResponse = errors.New("llm provider returned an unusable response")
)

// StatusError is an ErrUpstream carrying the provider's HTTP status (but not
// its body, which may echo prompts or key fragments).
type StatusError struct{ Status int }

func (e *StatusError) Error() string { return fmt.Sprintf("llm provider answered HTTP %d", e.Status) }

// Unwrap makes errors.Is(err, ErrUpstream) true.
func (e *StatusError) Unwrap() error { return ErrUpstream }

// maxResponse caps what we read from a provider.
const maxResponse = 10 << 20

// Options selects and configures a provider.
type Options struct {
	AnthropicKey  string
	AnthropicBase string
	OpenAIKey     string
	OpenAIBase    string
	HTTPClient    *http.Client // nil: a client with a 10 minute timeout
}

// Select picks Anthropic when its key is set, else an OpenAI-compatible API
// when both its base URL and key are set, else Echo.
func Select(o Options) Responder {
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Minute}
	}
	switch {
	case o.AnthropicKey != "":
		return &Anthropic{BaseURL: o.AnthropicBase, APIKey: o.AnthropicKey, HTTP: hc}
	case o.OpenAIBase != "" && o.OpenAIKey != "":
		return &OpenAI{BaseURL: o.OpenAIBase, APIKey: o.OpenAIKey, HTTP: hc}
	default:
		return Echo{}
	}
}

// postJSON sends body to url with headers and decodes a 2xx answer into out.
func postJSON(ctx context.Context, hc *http.Client, url string, headers map[string]string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: encode request", ErrUpstream)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("%w: build request", ErrUpstream)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrUpstream, ctx.Err())
		}
		// The transport error may contain the URL but never headers; still,
		// keep the message generic and stable.
		return fmt.Errorf("%w: connection failed", ErrUpstream)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return &StatusError{Status: resp.StatusCode}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("%w: invalid JSON", ErrBadResponse)
	}
	return nil
}

func clampTokens(n int64) int64 {
	if n < 0 {
		return 0
	}
	return n
}
