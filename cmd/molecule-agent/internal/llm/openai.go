package llm

import (
	"context"
	"fmt"
	"net/http"
)

// OpenAI calls POST {BaseURL}/chat/completions on any OpenAI-compatible API
// (BaseURL includes the version prefix, e.g. https://api.openai.com/v1).
type OpenAI struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

var _ Responder = (*OpenAI)(nil)

// DefaultOpenAIModel is used when neither MODEL nor config.yaml names one.
const DefaultOpenAIModel = "gpt-4o-mini"

type openAIRequest struct {
	Model     string          `json:"model"`
	MaxTokens int             `json:"max_tokens,omitempty"`
	Messages  []openAIMessage `json:"messages"`
}

type openAIMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIResponse struct {
	Choices []struct {
		Message struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// Provider implements Responder.
func (o *OpenAI) Provider() string { return "openai" }

// Metered implements Responder.
func (o *OpenAI) Metered() bool { return true }

// Respond implements Responder.
func (o *OpenAI) Respond(ctx context.Context, r Request) (Reply, error) {
	msgs := make([]openAIMessage, 0, 2)
	if r.System != "" {
		msgs = append(msgs, openAIMessage{Role: "system", Content: r.System})
	}
	msgs = append(msgs, openAIMessage{Role: "user", Content: r.Text})
	model := r.Model
	if model == "" {
		model = DefaultOpenAIModel
	}
	var out openAIResponse
	err := postJSON(ctx, o.HTTP, o.BaseURL+"/chat/completions", map[string]string{
		"Authorization": "Bearer " + o.APIKey,
	}, openAIRequest{Model: model, MaxTokens: r.MaxTokens, Messages: msgs}, &out)
	if err != nil {
		return Reply{}, err
	}
	if len(out.Choices) == 0 || out.Choices[0].Message.Content == nil {
		return Reply{}, fmt.Errorf("%w: no choices", ErrBadResponse)
	}
	rep := Reply{Text: *out.Choices[0].Message.Content}
	// Some compatible servers omit usage; that is not fatal, the call is
	// simply unmetered.
	if out.Usage != nil {
		rep.InputTokens = clampTokens(out.Usage.PromptTokens)
		rep.OutputTokens = clampTokens(out.Usage.CompletionTokens)
	}
	return rep, nil
}
