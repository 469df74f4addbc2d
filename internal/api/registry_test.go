package api_test

import (
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/api"
	"github.com/moleculesai/molecule/internal/apptest/kit"
	"github.com/moleculesai/molecule/internal/events"
	"github.com/moleculesai/molecule/internal/store"
)

func beat(id uuid.UUID, extra map[string]any) map[string]any {
	b := map[string]any{"workspace_id": id.String(), "error_rate": 0, "active_tasks": 0, "current_task": "",
		"uptime_seconds": 10}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func spendOf(t *testing.T, st *store.Store, id uuid.UUID) int64 {
	t.Helper()
	var n int64
	if err := st.DB.QueryRow(`SELECT monthly_spend FROM workspaces WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRegisterAndHeartbeat(t *testing.T) {
	h := api.NewTestServer(t, api.TestServerOptions{})
	id, tok := createProvisioned(t, h, "agent", nil)
	other, otherTok := createProvisioned(t, h, "other", nil)
	sub := h.Hub.SubscribeWorkspace(id, 256)
	defer sub.Close()

	card := map[string]any{"name": "agent", "skills": []any{}}
	reg := map[string]any{"id": id.String(), "url": "http://10.0.0.5:8000", "agent_card": card}
	wantStatus(t, h.Do("POST", "/registry/register", otherTok, reg), 403) // another workspace's token
	wantStatus(t, h.Do("POST", "/registry/register", h.Admin, reg), 403)  // admin is not an agent
	wantStatus(t, h.Do("POST", "/registry/register", "", reg), 401)
	wantStatus(t, h.Do("POST", "/registry/register", "garbage", reg), 401)
	for _, body := range []any{`{`, `{"id":5}`, map[string]any{"id": "nope", "url": "http://x"},
		map[string]any{"id": id.String()}, map[string]any{"id": id.String(), "url": "ftp://x"},
		map[string]any{"id": id.String(), "url": "http://169.254.169.254"},
		map[string]any{"id": id.String(), "url": "http://x\x00"},
		map[string]any{"id": id.String(), "url": "http://x", "agent_card": "str"},
		map[string]any{"id": id.String(), "url": "http://x", "agent_card": map[string]any{"n": "a\x00"}}} {
		if r := h.Do("POST", "/registry/register", tok, body); r.Status != 400 {
			t.Errorf("register %v: %d %s", body, r.Status, r.Body)
		}
	}
	r := h.Do("POST", "/registry/register", tok, reg)
	wantStatus(t, r, 200)
	if r.Map(t)["status"] != "registered" || statusOf(t, h.Store, id) != "online" {
		t.Fatalf("register: %s", r.Body)
	}
	w, _ := h.Store.GetWorkspace(context.Background(), id)
	if w.URL != "http://10.0.0.5:8000" || !strings.Contains(string(w.AgentCard), `"skills"`) {
		t.Fatalf("stored: %+v", w)
	}

	// Spend: clamped, written only when > 0 after clamping.
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, map[string]any{"monthly_spend": 1234})), 200)
	if spendOf(t, h.Store, id) != 1234 {
		t.Fatal("spend not written")
	}
	for _, v := range []any{0, -50, nil} {
		wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, map[string]any{"monthly_spend": v})), 200)
	}
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, nil)), 200)
	if spendOf(t, h.Store, id) != 1234 {
		t.Fatalf("zero/negative/omitted spend cleared it: %d", spendOf(t, h.Store, id))
	}
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, `{"workspace_id":"`+id.String()+`","monthly_spend":1e300}`), 200)
	if spendOf(t, h.Store, id) != store.MaxMonthlySpend {
		t.Fatalf("not clamped: %d", spendOf(t, h.Store, id))
	}
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, `{"workspace_id":"`+id.String()+`","monthly_spend":99999999999999999999999}`), 200)
	if spendOf(t, h.Store, id) != store.MaxMonthlySpend {
		t.Fatalf("not clamped: %d", spendOf(t, h.Store, id))
	}

	// Status transitions.
	steps := []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"error_rate": 0.6, "sample_error": "boom"}, "degraded"},
		{map[string]any{"error_rate": 0.3}, "degraded"}, // hysteresis: back only below 0.1
		{map[string]any{"error_rate": 0.05}, "online"},
		{map[string]any{"runtime_state": "wedged"}, "degraded"},
		{map[string]any{"error_rate": 0.0}, "online"},
		{map[string]any{"error_rate": 0.3}, "online"},
	}
	for i, st := range steps {
		r := h.Do("POST", "/registry/heartbeat", tok, beat(id, st.body))
		wantStatus(t, r, 200)
		if got := r.Map(t)["status"]; got != st.want || statusOf(t, h.Store, id) != st.want {
			t.Fatalf("step %d: %v, want %s", i, got, st.want)
		}
	}
	for _, from := range []string{"offline", "provisioning", "awaiting_agent"} {
		_, _, _ = h.Store.SetWorkspaceStatus(context.Background(), id, from)
		wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, nil)), 200)
		if s := statusOf(t, h.Store, id); s != "online" {
			t.Fatalf("%s → %s", from, s)
		}
	}
	_, _, _ = h.Store.SetWorkspaceStatus(context.Background(), id, "paused")
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, nil)), 200)
	if s := statusOf(t, h.Store, id); s != "paused" {
		t.Fatalf("a beat resurrected a paused workspace: %s", s)
	}
	_, _, _ = h.Store.SetWorkspaceStatus(context.Background(), id, "online")

	// Heartbeat event carries the beat; TASK_UPDATED when the task changes.
	drain(sub)
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, map[string]any{"current_task": "write docs",
		"active_tasks": 1, "error_rate": 0.01, "uptime_seconds": 77})), 200)
	got := collect(t, sub, 2)
	if got[0].Type != "WORKSPACE_HEARTBEAT" || got[1].Type != "TASK_UPDATED" {
		t.Fatalf("events: %v %v", got[0].Type, got[1].Type)
	}
	for _, k := range []string{`"status":"online"`, `"active_tasks":1`, `"current_task":"write docs"`, `"error_rate":0.01`, `"uptime_seconds":77`} {
		if !strings.Contains(string(got[0].Payload), k) {
			t.Fatalf("heartbeat payload %s lacks %s", got[0].Payload, k)
		}
	}
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(id, map[string]any{"current_task": "write docs", "active_tasks": 1})), 200)
	got = collect(t, sub, 1)
	select {
	case ev := <-sub.C:
		t.Fatalf("unexpected %s for an unchanged task", ev.Type)
	case <-time.After(100 * time.Millisecond):
	}
	if got[0].Type != "WORKSPACE_HEARTBEAT" {
		t.Fatal(got[0].Type)
	}
	// Heartbeats are not stored; transitions are.
	if stored := kit.Count(t, h.Store.DB, "events", "event_type IN ('WORKSPACE_HEARTBEAT','TASK_UPDATED')"); stored != 0 {
		t.Fatalf("%d heartbeat events stored", stored)
	}
	ev := kit.EventTypes(t, h.Store.DB, id)
	if !strings.Contains(strings.Join(ev, ","), "WORKSPACE_DEGRADED") {
		t.Fatalf("no degraded event: %v", ev)
	}

	// Bad heartbeats.
	for _, body := range []any{`{`, `[]`, `{"workspace_id":7}`, map[string]any{"workspace_id": "x"},
		map[string]any{}, beat(id, map[string]any{"error_rate": 1.5}), beat(id, map[string]any{"error_rate": -0.1}),
		beat(id, map[string]any{"active_tasks": -1}), beat(id, map[string]any{"uptime_seconds": -1}),
		beat(id, map[string]any{"current_task": "a\x00b"}), beat(id, map[string]any{"active_tasks": "one"}),
		beat(id, map[string]any{"monthly_spend": "lots"}), `{"workspace_id":"` + id.String() + `","x":"` + strings.Repeat("a", 2<<20) + `"}`} {
		if r := h.Do("POST", "/registry/heartbeat", tok, body); r.Status != 400 && r.Status != 413 {
			t.Errorf("heartbeat %.80v: %d %s", body, r.Status, r.Body)
		}
	}
	wantStatus(t, h.Do("POST", "/registry/heartbeat", otherTok, beat(id, nil)), 403)
	wantStatus(t, h.Do("POST", "/registry/heartbeat", tok, beat(other, nil)), 403)
	wantStatus(t, h.Do("POST", "/registry/heartbeat", "", beat(id, nil)), 401)

	// update-card
	sub2 := h.Hub.SubscribeWorkspace(id, 16)
	defer sub2.Close()
	wantStatus(t, h.Do("POST", "/registry/update-card", tok, map[string]any{"workspace_id": id.String(), "agent_card": map[string]any{"name": "v2"}}), 200)
	if got := collect(t, sub2, 1); got[0].Type != "AGENT_CARD_UPDATED" {
		t.Fatal(got[0].Type)
	}
	for _, body := range []any{`{`, map[string]any{"workspace_id": id.String()}, map[string]any{"workspace_id": id.String(), "agent_card": []int{1}},
		map[string]any{"workspace_id": "bad", "agent_card": map[string]any{}}} {
		if r := h.Do("POST", "/registry/update-card", tok, body); r.Status != 400 {
			t.Errorf("update-card %v: %d", body, r.Status)
		}
	}
	wantStatus(t, h.Do("POST", "/registry/update-card", otherTok, map[string]any{"workspace_id": id.String(), "agent_card": map[string]any{}}), 403)
}

func drain(sub *events.Subscription) {
	for {
		select {
		case <-sub.C:
		case <-time.After(150 * time.Millisecond):
			return
		}
	}
}

func collect(t *testing.T, sub *events.Subscription, n int) []events.Event {
	t.Helper()
	var out []events.Event
	for len(out) < n {
		select {
		case ev := <-sub.C:
			out = append(out, ev)
		case <-time.After(3 * time.Second):
			t.Fatalf("got %d of %d events", len(out), n)
		}
	}
	return out
}

func TestDiscoverPeersCheckAccess(t *testing.T) {
	in := startWS(t)
	//        root            root2
	//       /    \
	//      a      b
	//     /        \
	//    a1         b1
	root, rootTok := createExternal(t, in, "root", nil)
	root2, root2Tok := createExternal(t, in, "root2", nil)
	a, aTok := createExternal(t, in, "alpha", &root)
	b, _ := createExternal(t, in, "beta", &root)
	a1, a1Tok := createExternal(t, in, "alpha-one", &a)
	b1, _ := createExternal(t, in, "beta-one", &b)
	wantStatus(t, in.Do("POST", "/registry/register", aTok, map[string]any{"id": a.String(), "url": "http://10.0.0.7:8000",
		"agent_card": map[string]any{"name": "alpha"}}), 200)

	allowed := []struct {
		tok    string
		target uuid.UUID
		ok     bool
	}{
		{aTok, a, true}, {aTok, root, true}, {aTok, b, true}, {aTok, a1, true}, {a1Tok, root, true},
		{rootTok, root2, true}, {rootTok, b1, true},
		{a1Tok, b, false}, {a1Tok, b1, false}, {aTok, b1, false}, {root2Tok, a, false},
	}
	for _, c := range allowed {
		r := in.Do("GET", "/registry/discover/"+c.target.String(), c.tok, nil)
		want := 403
		if c.ok {
			want = 200
		}
		if r.Status != want {
			t.Errorf("discover %s: %d want %d", c.target, r.Status, want)
		}
	}
	r := in.Do("GET", "/registry/discover/"+a.String(), rootTok, nil)
	if m := r.Map(t); m["url"] != "http://10.0.0.7:8000" || m["status"] != "online" || m["agent_card"] == nil {
		t.Fatalf("discover: %s", r.Body)
	}
	wantStatus(t, in.Do("GET", "/registry/discover/"+uuid.NewString(), aTok, nil), 404)
	wantStatus(t, in.Do("GET", "/registry/discover/bad", aTok, nil), 400)
	wantStatus(t, in.Do("GET", "/registry/discover/"+a.String(), in.Admin, nil), 403)
	wantStatus(t, in.Do("GET", "/registry/discover/"+a.String(), "", nil), 401)

	// Peers of a: parent root, sibling beta, child alpha-one.
	r = in.Do("GET", "/registry/"+a.String()+"/peers", aTok, nil)
	wantStatus(t, r, 200)
	var peers []map[string]any
	r.JSON(t, &peers)
	names := map[string]string{}
	for _, p := range peers {
		names[p["name"].(string)] = p["relationship"].(string)
	}
	if len(peers) != 3 || names["root"] != "parent" || names["beta"] != "sibling" || names["alpha-one"] != "child" {
		t.Fatalf("peers: %s", r.Body)
	}
	r = in.Do("GET", "/registry/"+a.String()+"/peers?q=BET", in.Admin, nil)
	r.JSON(t, &peers)
	if len(peers) != 1 || peers[0]["name"] != "beta" {
		t.Fatalf("peers q: %s", r.Body)
	}
	r = in.Do("GET", "/registry/"+a.String()+"/peers?q=%25", in.Admin, nil) // a literal %
	r.JSON(t, &peers)
	if len(peers) != 0 {
		t.Fatalf("q=%% matched: %s", r.Body)
	}
	r = in.Do("GET", "/registry/"+root.String()+"/peers", rootTok, nil)
	r.JSON(t, &peers)
	if len(peers) != 3 { // root2 (a root is a sibling of roots), alpha, beta
		t.Fatalf("root peers: %s", r.Body)
	}
	wantStatus(t, in.Do("GET", "/registry/"+a.String()+"/peers?q=%00", aTok, nil), 400)
	wantStatus(t, in.Do("GET", "/registry/"+a.String()+"/peers", a1Tok, nil), 403)
	wantStatus(t, in.Do("GET", "/registry/"+uuid.NewString()+"/peers", in.Admin, nil), 404)
	wantStatus(t, in.Do("GET", "/registry/bad/peers", in.Admin, nil), 400)

	// check-access
	r = in.Do("POST", "/registry/check-access", in.Admin, map[string]any{"caller_id": a1.String(), "target_id": b.String()})
	wantStatus(t, r, 200)
	if r.Map(t)["allowed"] != false {
		t.Fatalf("check-access: %s", r.Body)
	}
	r = in.Do("POST", "/registry/check-access", a1Tok, map[string]any{"caller_id": a1.String(), "target_id": root.String()})
	wantStatus(t, r, 200)
	if r.Map(t)["allowed"] != true {
		t.Fatalf("check-access: %s", r.Body)
	}
	wantStatus(t, in.Do("POST", "/registry/check-access", a1Tok, map[string]any{"caller_id": a.String(), "target_id": root.String()}), 403)
	wantStatus(t, in.Do("POST", "/registry/check-access", "", map[string]any{"caller_id": a.String(), "target_id": root.String()}), 401)
	for _, body := range []any{`{`, `{"caller_id":1}`, map[string]any{"caller_id": "x", "target_id": a.String()},
		map[string]any{"caller_id": a.String(), "target_id": "\x00"}, map[string]any{"caller_id": a.String()}} {
		if r := in.Do("POST", "/registry/check-access", in.Admin, body); r.Status != 400 {
			t.Errorf("check-access %v: %d", body, r.Status)
		}
	}
	r = in.Do("POST", "/registry/check-access", in.Admin, map[string]any{"caller_id": uuid.NewString(), "target_id": a.String()})
	if r.Map(t)["allowed"] != false {
		t.Fatalf("unknown caller allowed: %s", r.Body)
	}
}

// fakeLookup authenticates one workspace token without a database, so the
// store can be a sqlmock that fails exactly where the test wants.
type fakeLookup struct {
	hash []byte
	ws   uuid.UUID
}

func (f fakeLookup) LookupToken(_ context.Context, hash []byte) (store.TokenRecord, error) {
	if string(hash) == string(f.hash) {
		return store.TokenRecord{ID: uuid.New(), Kind: store.TokenKindWorkspace, WorkspaceID: f.ws}, nil
	}
	return store.TokenRecord{}, store.ErrNotFound
}
func (fakeLookup) LookupSession(context.Context, []byte) (uuid.UUID, error) {
	return uuid.Nil, store.ErrNotFound
}
func (fakeLookup) TouchTokens(context.Context, map[uuid.UUID]time.Time) error { return nil }

// A database failure during registration is an opaque 500 "registration failed".
func TestRegisterDatabaseFailureIsOpaque(t *testing.T) {
	db, mock, err := sqlmock.New()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := uuid.New()
	tok := "agent-token-for-sqlmock-test-0000000000000"
	mock.ExpectQuery(`UPDATE workspaces w SET url`).WillReturnError(errBoom)
	h := api.NewTestServer(t, api.TestServerOptions{Store: store.New(db), Lookup: fakeLookup{hash: hashOf(tok), ws: id}})
	r := h.Do("POST", "/registry/register", tok, map[string]any{"id": id.String(), "url": "http://10.0.0.1:8000"})
	wantStatus(t, r, http.StatusInternalServerError)
	m := r.Map(t)
	if m["error"] != "registration failed" || m["code"] != "internal" || m["request_id"] == "" {
		t.Fatalf("body: %s", r.Body)
	}
	if strings.Contains(string(r.Body), "pq") || strings.Contains(string(r.Body), "relation") {
		t.Fatalf("driver text leaked: %s", r.Body)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	// And a heartbeat on a failing database is an opaque 500/503 too.
	mock.ExpectPrepare(`WITH old AS`).WillReturnError(sql.ErrConnDone)
	r = h.Do("POST", "/registry/heartbeat", tok, beat(id, nil))
	if r.Status < 500 || strings.Contains(string(r.Body), "sql:") {
		t.Fatalf("heartbeat on a dead database: %d %s", r.Status, r.Body)
	}
}
