package artifacts

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrInvalidArgument wraps every error the client returns before sending
	// a request because an argument could never be valid.
	ErrInvalidArgument = errors.New("artifacts: invalid argument")

	// ErrResponseTooLarge means the upstream body exceeded MaxResponseBytes.
	// It is an upstream failure, not a client error.
	ErrResponseTooLarge = errors.New("artifacts: upstream response exceeds 1 MiB")
)

// upstreamMessage is the only text a user ever sees for an upstream failure;
// it matches the body the contract prescribes for the 502.
const upstreamMessage = "upstream service error"

// ErrorDetail is one entry of the envelope's "errors" (or "messages") array.
type ErrorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// APIError is a response that was received but is not a success.
//
// StatusCode is the HTTP status. Message is safe to show a caller only when
// IsClientError reports true (a genuine Cloudflare 4xx envelope); for every
// other APIError it is the fixed "upstream service error". Detail holds the
// upstream's own text (Cloudflare messages or a bounded excerpt of the
// body) for server-side logs only: Error() never includes it, because
// Error() strings end up in places users can read.
type APIError struct {
	StatusCode int
	Message    string
	// Errors are the decoded envelope errors, when there was an envelope.
	Errors []ErrorDetail
	// Detail is upstream text for logs; never shown to users.
	Detail string
	// Cloudflare reports that the body was a well-formed v4 envelope with
	// success=false. Only then is a 4xx trusted as Cloudflare's own answer
	// rather than, say, an HTML page from a proxy in between.
	Cloudflare bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("artifacts: upstream status %d: %s", e.StatusCode, e.Message)
}

// clientError reports whether e is a genuine Cloudflare 4xx.
func (e *APIError) clientError() bool {
	return e.Cloudflare && e.StatusCode >= 400 && e.StatusCode < 500
}

// IsClientError reports whether err is (or wraps) a genuine Cloudflare 4xx
// envelope, and if so returns the status and the message that the handler
// passes through to its caller. For every other error, including 4xx
// responses whose body is not a Cloudflare envelope, it returns ok=false and
// the handler must answer 502 "upstream service error".
func IsClientError(err error) (status int, msg string, ok bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.clientError() {
		return ae.StatusCode, ae.Message, true
	}
	return 0, "", false
}

// IsUpstreamFailure reports whether err is a failure the handler must map to
// 502: any non-nil error that is neither a Cloudflare 4xx nor an argument the
// client refused before sending (ErrInvalidArgument, which is the caller's
// own 400).
func IsUpstreamFailure(err error) bool {
	if err == nil || errors.Is(err, ErrInvalidArgument) {
		return false
	}
	_, _, client := IsClientError(err)
	return !client
}

// newStatusError builds the APIError for a response that is not a success.
// env is nil when the body was not a v4 envelope; raw is the (bounded) body.
func newStatusError(status int, env *envelope, raw []byte) *APIError {
	ae := &APIError{StatusCode: status, Message: upstreamMessage}
	if env == nil {
		ae.Detail = excerpt(raw)
		return ae
	}
	ae.Errors = env.Errors
	joined := joinMessages(env.Errors)
	ae.Detail = joined
	// A 4xx envelope is Cloudflare refusing the request: its text is meant
	// for the caller. success=true on a 4xx is self-contradictory, so it is
	// not trusted.
	if status >= 400 && status < 500 && !env.ok() {
		ae.Cloudflare = true
		ae.Message = joined
		if ae.Message == "" {
			ae.Message = strings.ToLower(http.StatusText(status))
		}
		if ae.Message == "" {
			ae.Message = "request rejected"
		}
	}
	return ae
}

func joinMessages(errs []ErrorDetail) string {
	parts := make([]string, 0, len(errs))
	for _, e := range errs {
		if m := strings.TrimSpace(e.Message); m != "" {
			parts = append(parts, m)
		}
	}
	return strings.Join(parts, "; ")
}

// maxDetail bounds how much raw upstream body is kept for logs.
const maxDetail = 512

// excerpt returns a log-sized, valid-UTF-8 prefix of an upstream body.
func excerpt(b []byte) string {
	if len(b) > maxDetail {
		b = b[:maxDetail]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
