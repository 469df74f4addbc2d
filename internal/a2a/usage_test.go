package a2a

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestExtractUsage(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		in, out int64
	}{
		{"result usage", `{"jsonrpc":"2.0","id":1,"result":{"usage":{"input_tokens":120,"output_tokens":30}}}`, 120, 30},
		{"top-level usage", `{"jsonrpc":"2.0","id":1,"result":{"kind":"message"},"usage":{"input_tokens":5,"output_tokens":7}}`, 5, 7},
		{"result usage wins", `{"result":{"usage":{"input_tokens":1,"output_tokens":2}},"usage":{"input_tokens":100,"output_tokens":200}}`, 1, 2},
		{"string result, top-level usage", `{"result":"done","usage":{"input_tokens":3,"output_tokens":4}}`, 3, 4},
		{"no usage", `{"jsonrpc":"2.0","id":1,"result":{"parts":[]}}`, 0, 0},
		{"INT64_MAX clamped", `{"result":{"usage":{"input_tokens":9223372036854775807,"output_tokens":9223372036854775807}}}`, MaxTokens, MaxTokens},
		{"beyond int64", `{"result":{"usage":{"input_tokens":99999999999999999999999,"output_tokens":1e400}}}`, MaxTokens, MaxTokens},
		{"negative is zero", `{"result":{"usage":{"input_tokens":-5,"output_tokens":-9223372036854775808}}}`, 0, 0},
		{"very negative", `{"result":{"usage":{"input_tokens":-99999999999999999999999,"output_tokens":-1e400}}}`, 0, 0},
		{"just over the cap", `{"usage":{"input_tokens":10000001,"output_tokens":10000000}}`, MaxTokens, MaxTokens},
		{"fractions truncated", `{"usage":{"input_tokens":12.9,"output_tokens":1e3}}`, 12, 1000},
		{"wrong types are zero", `{"usage":{"input_tokens":"500","output_tokens":true}}`, 0, 0},
		{"nulls", `{"usage":{"input_tokens":null}}`, 0, 0},
		{"usage not an object", `{"usage":[1,2]}`, 0, 0},
		{"not JSON", `usage: lots`, 0, 0},
		{"array", `[{"usage":{"input_tokens":1}}]`, 0, 0},
		{"empty", ``, 0, 0},
	}
	for _, c := range cases {
		u := ExtractUsage([]byte(c.body))
		if u.InputTokens != c.in || u.OutputTokens != c.out {
			t.Errorf("%s: got %+v, want in=%d out=%d", c.name, u, c.in, c.out)
		}
	}
}

func TestCost(t *testing.T) {
	p := Prices{InputPerMTok: 3, OutputPerMTok: 15}
	if got := p.CostMicroUSD(Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}); got != 18_000_000 {
		t.Fatalf("1M+1M tokens: %d µ$, want 18,000,000", got)
	}
	if got := p.CostMicroUSD(Usage{InputTokens: 1, OutputTokens: 1}); got != 18 {
		t.Fatalf("1+1 tokens: %d µ$, want 18", got)
	}
	if got := p.CostMicroUSD(Usage{InputTokens: MaxTokens, OutputTokens: MaxTokens}); got != 180_000_000 {
		t.Fatalf("max tokens: %d", got)
	}
	if got := (Prices{}).CostMicroUSD(Usage{InputTokens: 5}); got != 0 {
		t.Fatalf("free prices: %d", got)
	}
}

func TestNormalize(t *testing.T) {
	decode := func(b []byte) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		return m
	}
	// A complete JSON-RPC request passes byte for byte.
	full := []byte(`{"jsonrpc":"2.0","id":"x","method":"tasks/get","params":{"id":"t1"}}`)
	out, method, err := Normalize(full)
	if err != nil || !bytes.Equal(out, full) || method != "tasks/get" {
		t.Fatalf("passthrough: %s %q %v", out, method, err)
	}
	withID := []byte(`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"messageId":"m1","parts":[]}}}`)
	if out, _, _ := Normalize(withID); !bytes.Equal(out, withID) {
		t.Fatalf("messageId present: changed to %s", out)
	}
	// JSON-RPC without messageId: filled in, the rest kept.
	out, _, err = Normalize([]byte(`{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := decode(out)
	msg := m["params"].(map[string]any)["message"].(map[string]any)
	if id, _ := msg["messageId"].(string); len(id) != 36 || msg["role"] != "user" || m["id"].(float64) != 7 {
		t.Fatalf("fill-in: %s", out)
	}
	// Bare body: wrapped, default method, params are the body's fields.
	out, method, err = Normalize([]byte(`{"message":{"role":"user","messageId":"","parts":[]}}`))
	if err != nil || method != DefaultMethod {
		t.Fatalf("wrap: %q %v", method, err)
	}
	m = decode(out)
	if m["jsonrpc"] != "2.0" || m["method"] != "message/send" || len(m["id"].(string)) != 36 {
		t.Fatalf("wrap envelope: %s", out)
	}
	if id := m["params"].(map[string]any)["message"].(map[string]any)["messageId"].(string); len(id) != 36 {
		t.Fatalf("empty messageId must be replaced: %s", out)
	}
	// Bare body with method and params.
	out, method, _ = Normalize([]byte(`{"method":"tasks/cancel","params":{"id":"t9"}}`))
	m = decode(out)
	if method != "tasks/cancel" || m["params"].(map[string]any)["id"] != "t9" || m["method"] != "tasks/cancel" {
		t.Fatalf("method+params: %s", out)
	}
	// Bare empty object → params {}.
	out, _, _ = Normalize([]byte(`{}`))
	if p, ok := decode(out)["params"].(map[string]any); !ok || len(p) != 0 {
		t.Fatalf("empty: %s", out)
	}
	// A non-string method falls back to the default when wrapping.
	out, method, _ = Normalize([]byte(`{"method":42}`))
	if method != DefaultMethod || decode(out)["method"] != DefaultMethod {
		t.Fatalf("non-string method: %s", out)
	}
	for _, bad := range []string{``, `nope`, `[]`, `"str"`, `null`, `{"a":`, `{"a":1}x`, `123`} {
		if _, _, err := Normalize([]byte(bad)); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("Normalize(%q) = %v, want ErrInvalidJSON", bad, err)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","messageId":"m","parts":[{"kind":"text","text":"ping"}]}}}`)
	for b.Loop() {
		if _, _, err := Normalize(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractUsage(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":"1","result":{"kind":"message","parts":[{"kind":"text","text":"pong"}],"usage":{"input_tokens":12,"output_tokens":3}}}`)
	for b.Loop() {
		ExtractUsage(body)
	}
}
