package llm

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Anthropic calls POST {BaseURL}/v1/messages.
type Anthropic struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

var _ Responder = (*Anthropic)(nil)

// DefaultAnthropicModel is used when neither MODEL nor config.yaml names one.
const DefaultAnthropicModel = "claude-sonnet-4-5"

// AnthropicVersion is the API version header value the request shape follows.
const AnthropicVersion = "2023-06-01"

type anthropicRequest struct {
	Model     string             `json:"model"`
	MaxTokens int                `json:"max_tokens"`
	System    string             `json:"system,omitempty"`
	Messages  []anthropicMessage `json:"messages"`
}

type anthropicMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type anthropicResponse struct {
	Type    string `json:"type"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage *struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
}

// Provider implements Responder.
func (a *Anthropic) Provider() string { return "anthropic" }

// Metered implements Responder.
func (a *Anthropic) Metered() bool { return true }

// Respond implements Responder.
func (a *Anthropic) Respond(ctx context.Context, r Request) (Reply, error) {
	model := r.Model
	if model == "" {
		model = DefaultAnthropicModel
	}
	body := anthropicRequest{
		Model:     model,
		MaxTokens: r.MaxTokens,
		System:    r.System,
		Messages:  []anthropicMessage{{Role: "user", Content: r.Text}},
	}
	var out anthropicResponse
	err := postJSON(ctx, a.HTTP, a.BaseURL+"/v1/messages", map[string]string{
		"x-api-key":         a.APIKey,
		"anthropic-version": AnthropicVersion,
	}, body, &out)
	if err != nil {
		return Reply{}, err
	}
	var sb strings.Builder
	for _, c := range out.Content {
		if c.Type == "text" {
			sb.WriteString(c.Text)
		}
	}
	if out.Usage == nil {
		return Reply{}, fmt.Errorf("%w: no usage", ErrBadResponse)
	}
	return Reply{
		Text:         sb.String(),
		InputTokens:  clampTokens(out.Usage.InputTokens),
		OutputTokens: clampTokens(out.Usage.OutputTokens),
	}, nil
}
