package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const secretBody = `{"error":{"message":"key sk-SECRET-123 is invalid; prompt was: confidential"}}`

// fakeAnthropic follows the Messages API: it checks the request and answers
// the documented response shape.
func fakeAnthropic(t *testing.T, status int, respBody string, check func(r *http.Request, body map[string]any)) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("request body is not JSON: %s", raw)
		}
		if check != nil {
			check(r, body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, respBody)
	}))
}

func TestAnthropicHappyPath(t *testing.T) {
	srv := fakeAnthropic(t, 200, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
		"content":[{"type":"text","text":"Hello"},{"type":"tool_use","id":"t"},{"type":"text","text":" world"}],
		"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":5}}`,
		func(r *http.Request, body map[string]any) {
			if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" {
				t.Errorf("got %s %s", r.Method, r.URL.Path)
			}
			if r.Header.Get("x-api-key") != "sk-test" || r.Header.Get("anthropic-version") != "2023-06-01" ||
				r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", r.Header)
			}
			if r.Header.Get("Authorization") != "" {
				t.Error("anthropic must not get an Authorization header")
			}
			if body["model"] != "claude-x" || body["max_tokens"] != float64(99) || body["system"] != "be kind" {
				t.Errorf("body = %v", body)
			}
			msgs, _ := body["messages"].([]any)
			if len(msgs) != 1 {
				t.Fatalf("messages = %v", body["messages"])
			}
			m := msgs[0].(map[string]any)
			if m["role"] != "user" || m["content"] != "hi there" {
				t.Errorf("message = %v", m)
			}
		})
	defer srv.Close()
	a := Select(Options{AnthropicKey: "sk-test", AnthropicBase: srv.URL, OpenAIKey: "o", OpenAIBase: "http://unused"})
	if a.Provider() != "anthropic" || !a.Metered() {
		t.Fatalf("Select chose %s", a.Provider())
	}
	rep, err := a.Respond(context.Background(), Request{Model: "claude-x", System: "be kind", MaxTokens: 99, Text: "hi there"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Text != "Hello world" || rep.InputTokens != 12 || rep.OutputTokens != 5 {
		t.Errorf("reply = %+v", rep)
	}
}

func TestAnthropicDefaultModelAndNoSystem(t *testing.T) {
	srv := fakeAnthropic(t, 200, `{"content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":-4,"output_tokens":1}}`,
		func(_ *http.Request, body map[string]any) {
			if body["model"] != DefaultAnthropicModel {
				t.Errorf("model = %v", body["model"])
			}
			if _, ok := body["system"]; ok {
				t.Error("empty system prompt must be omitted")
			}
		})
	defer srv.Close()
	rep, err := (&Anthropic{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client()}).Respond(context.Background(), Request{MaxTokens: 5, Text: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.InputTokens != 0 || rep.OutputTokens != 1 {
		t.Errorf("negative usage must clamp to 0: %+v", rep)
	}
}

func TestProviderFailuresAreGeneric(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		wantIs  error
		wantMsg string
	}{
		{"401", 401, secretBody, ErrUpstream, "HTTP 401"},
		{"529 overloaded", 529, secretBody, ErrUpstream, "HTTP 529"},
		{"invalid json", 200, `{"content": [`, ErrBadResponse, "unusable"},
		{"no usage", 200, `{"content":[{"type":"text","text":"x"}]}`, ErrBadResponse, "unusable"},
		{"openai no choices", 200, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, ErrBadResponse, "unusable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeAnthropic(t, tc.status, tc.body, nil)
			defer srv.Close()
			var r Responder = &Anthropic{BaseURL: srv.URL, APIKey: "sk-SECRET-123", HTTP: srv.Client()}
			if strings.HasPrefix(tc.name, "openai") {
				r = &OpenAI{BaseURL: srv.URL, APIKey: "sk-SECRET-123", HTTP: srv.Client()}
			}
			_, err := r.Respond(context.Background(), Request{Text: "confidential"})
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("err = %v, want %v", err, tc.wantIs)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantMsg) || strings.Contains(msg, "SECRET") || strings.Contains(msg, "confidential") {
				t.Errorf("error text %q leaks or is wrong", msg)
			}
		})
	}
}

func TestProviderUnreachableAndCancelled(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	_, err := (&OpenAI{BaseURL: base, APIKey: "k", HTTP: http.DefaultClient}).Respond(context.Background(), Request{Text: "x"})
	if !errors.Is(err, ErrUpstream) || strings.Contains(err.Error(), base) {
		t.Errorf("unreachable: err = %v", err)
	}

	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = (&Anthropic{BaseURL: slow.URL, APIKey: "k", HTTP: slow.Client()}).Respond(ctx, Request{Text: "x"})
	if !errors.Is(err, ErrUpstream) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestOpenAIHappyPath(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if r.Header.Get("Authorization") != "Bearer sk-open" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers = %v", r.Header)
		}
		if r.Header.Get("x-api-key") != "" {
			t.Error("openai must not get x-api-key")
		}
		var body struct {
			Model     string `json:"model"`
			MaxTokens int    `json:"max_tokens"`
			Messages  []struct{ Role, Content string }
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.Model != "gpt-x" || body.MaxTokens != 64 || len(body.Messages) != 2 ||
			body.Messages[0].Role != "system" || body.Messages[0].Content != "sys" ||
			body.Messages[1].Role != "user" || body.Messages[1].Content != "question" {
			t.Errorf("body = %+v", body)
		}
		_, _ = io.WriteString(w, `{"id":"c1","object":"chat.completion","choices":[{"index":0,
			"message":{"role":"assistant","content":"answer"},"finish_reason":"stop"}],
			"usage":{"prompt_tokens":30,"completion_tokens":7,"total_tokens":37}}`)
	}))
	defer srv.Close()
	o := Select(Options{OpenAIBase: srv.URL + "/v1", OpenAIKey: "sk-open", HTTPClient: srv.Client()})
	if o.Provider() != "openai" || !o.Metered() {
		t.Fatalf("Select chose %s", o.Provider())
	}
	rep, err := o.Respond(context.Background(), Request{Model: "gpt-x", System: "sys", MaxTokens: 64, Text: "question"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Text != "answer" || rep.InputTokens != 30 || rep.OutputTokens != 7 {
		t.Errorf("reply = %+v", rep)
	}
}

func TestOpenAIDefaultModelNoSystemNoUsage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model    string `json:"model"`
			Messages []struct{ Role string }
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.Model != DefaultOpenAIModel || len(body.Messages) != 1 || body.Messages[0].Role != "user" {
			t.Errorf("body = %+v", body)
		}
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":""}}]}`)
	}))
	defer srv.Close()
	rep, err := (&OpenAI{BaseURL: srv.URL, APIKey: "k", HTTP: srv.Client()}).Respond(context.Background(), Request{Text: "q"})
	if err != nil || rep.Text != "" || rep.InputTokens != 0 || rep.OutputTokens != 0 {
		t.Errorf("rep = %+v, err = %v", rep, err)
	}
}

func TestSelectFallsBackToEcho(t *testing.T) {
	for name, o := range map[string]Options{
		"nothing":        {},
		"openai no key":  {OpenAIBase: "http://x"},
		"openai no base": {OpenAIKey: "k"},
	} {
		if r := Select(o); r.Provider() != "echo" || r.Metered() {
			t.Errorf("%s: Select chose %s", name, r.Provider())
		}
	}
}

func TestEchoDeterministic(t *testing.T) {
	req := Request{System: "12345678", Text: "hello"} // 8 bytes → 2, 5 bytes → 2
	a, err := Echo{}.Respond(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Echo{}.Respond(context.Background(), req)
	if a != b {
		t.Errorf("echo not deterministic: %+v vs %+v", a, b)
	}
	// "echo: hello" is 11 bytes → 3 tokens.
	if a.Text != "echo: hello" || a.InputTokens != 4 || a.OutputTokens != 3 {
		t.Errorf("echo = %+v", a)
	}
	for s, want := range map[string]int64{"": 0, "a": 1, "abcd": 1, "abcde": 2, "héllo": 2} {
		if got := EstimateTokens(s); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", s, got, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (Echo{}).Respond(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled echo: %v", err)
	}
}
