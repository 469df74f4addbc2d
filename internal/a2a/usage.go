package a2a

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// MaxTokens caps each metered count of one call (§6): an agent reporting
// absurd numbers cannot blow up a workspace's usage row or its budget.
const MaxTokens = 10_000_000

// Usage is the token usage an agent reported in one answer.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

type usageJSON struct {
	InputTokens  json.RawMessage `json:"input_tokens"`
	OutputTokens json.RawMessage `json:"output_tokens"`
}

type usageEnvelope struct {
	Result *struct {
		Usage *usageJSON `json:"usage"`
	} `json:"result"`
	Usage *usageJSON `json:"usage"`
}

// ExtractUsage reads result.usage, else top-level usage, from a JSON-RPC
// answer. Counts are clamped to [0, MaxTokens]: negative, non-numeric and
// missing counts are 0, huge ones (INT64_MAX, 1e300) are MaxTokens. An
// answer that is not a JSON object, or a result that is not an object,
// yields zero usage.
func ExtractUsage(body []byte) Usage {
	// Most answers carry no usage at all: skip the decode then.
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return Usage{}
	}
	var env usageEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		// A result of another shape (a string, an array) fails the typed
		// decode; the top-level usage may still be there.
		var top struct {
			Usage *usageJSON `json:"usage"`
		}
		if json.Unmarshal(body, &top) != nil || top.Usage == nil {
			return Usage{}
		}
		env = usageEnvelope{Usage: top.Usage}
	}
	u := env.Usage
	if env.Result != nil && env.Result.Usage != nil {
		u = env.Result.Usage
	}
	if u == nil {
		return Usage{}
	}
	return Usage{InputTokens: clampTokens(u.InputTokens), OutputTokens: clampTokens(u.OutputTokens)}
}

// clampTokens turns one reported count into [0, MaxTokens].
func clampTokens(raw json.RawMessage) int64 {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s[0] == '"' || s == "null" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return min(max(n, 0), MaxTokens)
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		if s[0] == '-' {
			return 0
		}
		return MaxTokens
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	switch {
	case f <= 0:
		return 0
	case f >= MaxTokens:
		return MaxTokens
	}
	return int64(f)
}

// Prices are USD per million tokens (MOLECULE_PRICE_*_PER_MTOK).
type Prices struct {
	InputPerMTok  float64
	OutputPerMTok float64
}

// CostMicroUSD is the estimated cost of u in millionths of a dollar: a
// price per million tokens is exactly micro-dollars per token.
func (p Prices) CostMicroUSD(u Usage) int64 {
	c := float64(u.InputTokens)*p.InputPerMTok + float64(u.OutputTokens)*p.OutputPerMTok
	if c <= 0 || math.IsNaN(c) {
		return 0
	}
	if c >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return int64(math.Round(c))
}
