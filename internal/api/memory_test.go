package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

func expectStatus(t *testing.T, r *apptest.Response, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
}

func TestMemoryKV(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	a, tokA := in.CreateWorkspaceRow("a", nil)
	b, tokB := in.CreateWorkspaceRow("b", nil)
	base := "/workspaces/" + a.String() + "/memory"

	r := in.Do("POST", base, tokA, map[string]any{"key": "plan", "value": map[string]any{"step": 1}})
	expectStatus(t, r, 200, "create")
	if m := r.Map(t); m["status"] != "ok" || m["key"] != "plan" || m["version"] != float64(1) {
		t.Fatalf("create body %v", m)
	}
	r = in.Do("POST", base, tokA, map[string]any{"key": "plan", "value": "two", "if_match_version": 1})
	expectStatus(t, r, 200, "matching write")
	if r.Map(t)["version"] != float64(2) {
		t.Fatalf("version after write: %s", r.Body)
	}
	r = in.Do("POST", base, tokA, map[string]any{"key": "plan", "value": "stale", "if_match_version": 1})
	expectStatus(t, r, 409, "stale write")
	if m := r.Map(t); m["code"] != "conflict" || m["expected_version"] != float64(1) || m["current_version"] != float64(2) {
		t.Fatalf("conflict body %v", m)
	}
	r = in.Do("POST", base, tokA, map[string]any{"key": "plan", "value": 1, "if_match_version": 0})
	expectStatus(t, r, 409, "create-only over existing")
	if m := r.Map(t); m["expected_version"] != float64(0) || m["current_version"] != float64(2) {
		t.Fatalf("create-only conflict %v", m)
	}
	r = in.Do("POST", base, tokA, map[string]any{"key": "fresh", "value": nil, "if_match_version": 0, "ttl_seconds": 3600})
	expectStatus(t, r, 200, "create-only absent with ttl")

	r = in.Do("GET", base+"/plan", tokA, nil)
	expectStatus(t, r, 200, "get")
	if m := r.Map(t); m["value"] != "two" || m["version"] != float64(2) || m["expires_at"] != nil {
		t.Fatalf("get body %v", m)
	}
	r = in.Do("GET", base, in.Admin, nil)
	expectStatus(t, r, 200, "list by admin")
	var list []map[string]any
	r.JSON(t, &list)
	if len(list) != 2 || list[0]["key"] != "fresh" || list[0]["expires_at"] == nil || list[1]["key"] != "plan" {
		t.Fatalf("list %v", list)
	}
	// Isolation: b has no "plan", and b's token cannot touch a.
	expectStatus(t, in.Do("GET", "/workspaces/"+b.String()+"/memory/plan", tokB, nil), 404, "other workspace")
	expectStatus(t, in.Do("GET", base+"/plan", tokB, nil), 403, "wrong workspace token")
	expectStatus(t, in.Do("POST", base, tokB, map[string]any{"key": "x", "value": 1}), 403, "wrong token write")
	expectStatus(t, in.Do("GET", base+"/plan", "", nil), 401, "no token")
	expectStatus(t, in.Do("GET", base+"/plan", "garbage", nil), 401, "garbage token")
	expectStatus(t, in.Do("GET", "/workspaces/not-a-uuid/memory", in.Admin, nil), 400, "bad id")
	expectStatus(t, in.Do("GET", "/workspaces/"+uuid.NewString()+"/memory", in.Admin, nil), 404, "unknown workspace")
	expectStatus(t, in.Do("GET", base+"/missing", tokA, nil), 404, "missing key")

	expectStatus(t, in.Do("DELETE", base+"/plan", tokA, nil), 200, "delete")
	expectStatus(t, in.Do("DELETE", base+"/plan", tokA, nil), 404, "delete again")
	expectStatus(t, in.Do("GET", base+"/plan", tokA, nil), 404, "get deleted")

	// Expired entries are invisible.
	if _, err := in.App.Store.DB.Exec(`UPDATE workspace_memory SET expires_at = now() - interval '1 second' WHERE key = 'fresh'`); err != nil {
		t.Fatal(err)
	}
	expectStatus(t, in.Do("GET", base+"/fresh", tokA, nil), 404, "expired")
	r = in.Do("GET", base, tokA, nil)
	r.JSON(t, &list)
	if len(list) != 0 {
		t.Fatalf("expired entry listed: %v", list)
	}

	big := `{"key":"k","value":"` + strings.Repeat("x", 1<<20) + `"}`
	bad := []struct {
		name, body string
		status     int
	}{
		{"malformed", `{"key":`, 400},
		{"not an object", `[1]`, 400},
		{"empty body", ``, 400},
		{"key wrong type", `{"key":1,"value":1}`, 400},
		{"missing key", `{"value":1}`, 400},
		{"missing value", `{"key":"k"}`, 400},
		{"NUL in key", `{"key":"a\u0000b","value":1}`, 400},
		{"slash in key", `{"key":"a/b","value":1}`, 400},
		{"control char in key", `{"key":"a\nb","value":1}`, 400},
		{"long key", `{"key":"` + strings.Repeat("k", 257) + `","value":1}`, 400},
		{"NUL in value", `{"key":"k","value":{"a":["x\u0000"]}}`, 400},
		{"NUL in value key", `{"key":"k","value":{"a\u0000":1}}`, 400},
		{"negative ttl", `{"key":"k","value":1,"ttl_seconds":-1}`, 400},
		{"fractional ttl", `{"key":"k","value":1,"ttl_seconds":1.5}`, 400},
		{"huge ttl", `{"key":"k","value":1,"ttl_seconds":99999999999}`, 400},
		{"negative version", `{"key":"k","value":1,"if_match_version":-1}`, 400},
		{"version wrong type", `{"key":"k","value":1,"if_match_version":"1"}`, 400},
		{"over the cap", big, 413},
	}
	for _, c := range bad {
		r := in.Do("POST", base, tokA, c.body)
		expectStatus(t, r, c.status, c.name)
		if m := r.Map(t); m["code"] == nil || m["code"] == "internal" {
			t.Fatalf("%s: body %v", c.name, m)
		}
	}
	// Invalid UTF-8 inside a JSON string of the value.
	expectStatus(t, in.Do("POST", base, tokA, []byte("{\"key\":\"k\",\"value\":\"\xff\"}")), 400, "invalid utf-8 value")
	// A legitimate escaped backslash before u0000 is not a NUL.
	expectStatus(t, in.Do("POST", base, tokA, `{"key":"k","value":"\\u0000"}`), 200, "escaped backslash")
	expectStatus(t, in.Do("GET", base+"/a%00b", tokA, nil), 400, "NUL in path key")
	expectStatus(t, in.Do("GET", base+"?limit=-1", tokA, nil), 400, "negative limit")

	// A database failure is an opaque 500: no SQL or driver text.
	if _, err := in.App.Store.DB.Exec(`DROP TABLE workspace_memory`); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*apptest.Response{
		in.Do("POST", base, tokA, map[string]any{"key": "k", "value": 1}),
		in.Do("GET", base+"/k", tokA, nil),
		in.Do("GET", base, tokA, nil),
	} {
		expectStatus(t, r, 500, "broken table")
		m := r.Map(t)
		if m["code"] != "internal" || m["request_id"] == "" || strings.Contains(string(r.Body), "workspace_memory") ||
			strings.Contains(string(r.Body), "relation") {
			t.Fatalf("500 body leaks or lacks request_id: %s", r.Body)
		}
	}
}

// Over HTTP too, of 20 writers holding the same version exactly one wins.
func TestMemoryKVConcurrentWriters(t *testing.T) {
	in := apptest.Start(t, apptest.Options{})
	a, tok := in.CreateWorkspaceRow("a", nil)
	base := "/workspaces/" + a.String() + "/memory"
	expectStatus(t, in.Do("POST", base, tok, map[string]any{"key": "k", "value": 0}), 200, "seed")
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"key":"k","value":%d,"if_match_version":1}`, i)
			req, _ := http.NewRequest("POST", in.URL+base, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}(i)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] != 1 || count[409] != 19 {
		t.Fatalf("statuses %v, want one 200 and nineteen 409", count)
	}
}
