// Package kit holds the test helpers of apptest that do not import the
// server: sending a request and decoding its answer, polling, counting
// rows. Package api's own (internal) tests use them too, which they could
// not do through apptest without an import cycle.
package kit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/auth"
	"github.com/moleculesai/molecule/internal/store"
)

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Request is "METHOD path" of the request, for failure messages.
	Request string
}

// Expect fails the test unless r has the status, and returns r.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", r.Request, r.Status, status, r.Body)
	}
	return r
}

// As fails the test unless r has the status, and decodes its body as a T.
func As[T any](t testing.TB, r *Response, status int) T {
	t.Helper()
	var v T
	r.Expect(t, status).JSON(t, &v)
	return v
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as an object.
func (r *Response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// ErrorBody decodes an error answer: its message and code.
func (r *Response) ErrorBody(t testing.TB) (msg, code string) {
	t.Helper()
	var e struct{ Error, Code string }
	r.JSON(t, &e)
	return e.Error, e.Code
}

// ErrorMessage is the message of an error answer.
func (r *Response) ErrorMessage(t testing.TB) string {
	t.Helper()
	msg, _ := r.ErrorBody(t)
	return msg
}

// NewRequest builds a request with an optional bearer. body may be nil, a
// string or []byte (sent as is), or anything else (sent as JSON); a body
// is labelled application/json. headers are name, value pairs set last.
func NewRequest(t testing.TB, method, url, bearer string, body any, headers ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// Do sends a request (see NewRequest) to base+path and reads the answer.
func Do(t testing.TB, base, method, path, bearer string, body any, headers ...string) *Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(NewRequest(t, method, base+path, bearer, body, headers...))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data, Request: method + " " + path}
}

// Serve runs a request (see NewRequest) through h in process. The path is
// set on the URL as it is (query after "?"), so "..", "//" and NUL reach
// the router as sent, which no HTTP client would do.
func Serve(t testing.TB, h http.Handler, method, path, bearer string, body any, headers ...string) *Response {
	t.Helper()
	req := NewRequest(t, method, "http://platform.test/", bearer, body, headers...)
	req.URL.Path, req.URL.RawQuery, _ = strings.Cut(path, "?")
	req.URL.RawPath = ""
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = "192.0.2.1:1234" // as httptest.NewRequest
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return &Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes(), Request: method + " " + path}
}

// Eventually polls cond (work done after the response, in the background)
// every 20 ms, failing the test after 10 s.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, 10*time.Second, what, cond)
}

// EventuallyWithin is Eventually with another deadline.
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Count counts the rows of table, with an optional WHERE clause and its
// arguments (test setup only: table and where are not escaped).
func Count(t testing.TB, db *sql.DB, table, where string, args ...any) int {
	t.Helper()
	q := `SELECT count(*) FROM ` + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// EventTypes returns the types of a workspace's stored events, oldest first.
func EventTypes(t testing.TB, db *sql.DB, id uuid.UUID) []string {
	t.Helper()
	rows, err := db.Query(`SELECT event_type FROM events WHERE workspace_id = $1 ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// InsertWorkspace inserts ws directly (bypassing the API; ID set when
// nil) with a live token, and returns the token. Set Status, External,
// ParentID, URL as the test needs.
func InsertWorkspace(t testing.TB, st *store.Store, ws *store.Workspace) string {
	t.Helper()
	if ws.ID == uuid.Nil {
		ws.ID = uuid.New()
	}
	ctx := context.Background()
	plain, hash, prefix := auth.NewToken()
	err := st.Tx(ctx, func(tx *sql.Tx) error {
		if err := store.InsertWorkspaceTx(ctx, tx, ws); err != nil {
			return err
		}
		return store.InsertWorkspaceTokenTx(ctx, tx, store.NewTokenRow{ID: uuid.New(), WorkspaceID: ws.ID, Hash: hash, Prefix: prefix})
	})
	if err != nil {
		t.Fatalf("insert workspace %q: %v", ws.Name, err)
	}
	return plain
}
