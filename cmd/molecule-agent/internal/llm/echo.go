package llm

import "context"

// Echo answers "echo: <text>" with usage derived from byte lengths, so the
// whole metering path (agent usage → proxy → platform) is testable without
// a provider. It costs nothing.
type Echo struct{}

var _ Responder = Echo{}

// Provider implements Responder.
func (Echo) Provider() string { return "echo" }

// Metered implements Responder: echo is free, it reports no spend.
func (Echo) Metered() bool { return false }

// Respond implements Responder.
func (Echo) Respond(ctx context.Context, r Request) (Reply, error) {
	if err := ctx.Err(); err != nil {
		return Reply{}, err
	}
	out := "echo: " + r.Text
	return Reply{
		Text:         out,
		InputTokens:  EstimateTokens(r.System) + EstimateTokens(r.Text),
		OutputTokens: EstimateTokens(out),
	}, nil
}

// EstimateTokens is the deterministic token count echo mode reports: one
// token per four bytes, rounded up (the usual rule of thumb for English).
func EstimateTokens(s string) int64 {
	return int64((len(s) + 3) / 4)
}
