package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/provisioner"
	"github.com/moleculesai/molecule/internal/store"
)

// Error codes of §0.
const (
	CodeInvalidRequest  = "invalid_request"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "payload_too_large"
	CodeBudgetExceeded  = "budget_exceeded"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeUpstream        = "upstream_error"
	CodeInternal        = "internal"
	requestIDContextKey = "request_id"
)

// Error is an error with its HTTP answer. Message is shown to the client,
// so it must never carry driver, Docker or upstream text; Err (optional) is
// logged only.
type Error struct {
	Status  int
	Code    string
	Message string
	Extra   map[string]any
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// With adds extra body fields.
func (e *Error) With(k string, v any) *Error {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[k] = v
	return e
}

func newErr(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// BadRequest is a 400 invalid_request.
func BadRequest(msg string) *Error { return newErr(http.StatusBadRequest, CodeInvalidRequest, msg) }

// Unauthorized is a 401.
func Unauthorized(msg string) *Error { return newErr(http.StatusUnauthorized, CodeUnauthorized, msg) }

// Forbidden is a 403.
func Forbidden(msg string) *Error { return newErr(http.StatusForbidden, CodeForbidden, msg) }

// NotFound is a 404.
func NotFound(msg string) *Error { return newErr(http.StatusNotFound, CodeNotFound, msg) }

// Conflict is a 409.
func Conflict(msg string) *Error { return newErr(http.StatusConflict, CodeConflict, msg) }

// Unavailable is a 503.
func Unavailable(msg string) *Error {
	return newErr(http.StatusServiceUnavailable, CodeUnavailable, msg)
}

// ErrInvalidID is the 400 for a malformed id (§0).
var errInvalidID = BadRequest("invalid id")

// classify is the one mapping from an error to its HTTP answer: typed API
// errors answer as they say, store and domain sentinels map to their
// status, anything else is an opaque 500 whose detail is kept only in Err
// (for the log).
func classify(err error) *Error {
	var apiErr *Error
	var lim *store.LimitError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, store.ErrNotFound):
		return NotFound("not found")
	case errors.Is(err, auth.ErrUnavailable), errors.Is(err, store.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "service temporarily unavailable", Err: err}
	case errors.Is(err, provisioner.ErrNoBackend):
		return Unavailable(provisioner.ErrNoBackend.Error())
	case errors.As(err, &lim):
		return Conflict(lim.Msg)
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}

// Fail answers err as JSON (through classify) and aborts the chain. A 5xx
// carries the request id and its full error is logged.
func Fail(c *gin.Context, err error) {
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		c.Abort()
		return
	}
	apiErr := classify(err)
	body := gin.H{"error": apiErr.Message, "code": apiErr.Code}
	for k, v := range apiErr.Extra {
		body[k] = v
	}
	if apiErr.Status >= 500 {
		body["request_id"] = c.GetString(requestIDContextKey)
		logger(c).Error("request failed", "status", apiErr.Status, "err", err)
	}
	c.AbortWithStatusJSON(apiErr.Status, body)
}
