package provisioner

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fakeCP follows §12's control-plane API: bearer auth, provision → 201,
// delete, status.
type fakeCP struct {
	mu        sync.Mutex
	secret    string
	instances map[string]string // instance id → state
	last      map[string]any
	statusErr int // forced status for GET status
}

func (f *fakeCP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.secret {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/cp/workspaces/provision":
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		f.last = body
		id := "i-" + uuid.NewString()[:8]
		f.instances[id] = "running"
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"instance_id": id, "state": "starting"})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/cp/workspaces/"):
		inst := r.URL.Query().Get("instance_id")
		if _, ok := f.instances[inst]; !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		delete(f.instances, inst)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/status"):
		if f.statusErr != 0 {
			http.Error(w, "upstream exploded: secret-ish detail", f.statusErr)
			return
		}
		state, ok := f.instances[r.URL.Query().Get("instance_id")]
		if !ok {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"state": state})
	default:
		http.NotFound(w, r)
	}
}

func TestControlPlane(t *testing.T) {
	f := &fakeCP{secret: "s3cret", instances: map[string]string{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cp, err := NewControlPlane(ControlPlaneOptions{BaseURL: srv.URL, SharedSecret: "s3cret", OrgID: "org-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ws := uuid.New()

	inst, err := cp.Start(ctx, Spec{WorkspaceID: ws, Runtime: "", Tier: 3, PlatformURL: "https://p.example",
		Env: []string{"WORKSPACE_ID=" + ws.String(), "A=b=c"}, Files: map[string][]byte{".auth_token": []byte("tok\n")}})
	if err != nil || inst.ID == "" {
		t.Fatalf("start: %+v %v", inst, err)
	}
	f.mu.Lock()
	body := f.last
	f.mu.Unlock()
	if body["org_id"] != "org-1" || body["workspace_id"] != ws.String() || body["runtime"] != "molecule-agent" ||
		body["tier"] != float64(3) || body["platform_url"] != "https://p.example" {
		t.Errorf("provision body %v", body)
	}
	if env := body["env"].(map[string]any); env["A"] != "b=c" || env["WORKSPACE_ID"] != ws.String() {
		t.Errorf("env %v", env)
	}
	if files := body["files"].(map[string]any); files[".auth_token"] != "tok\n" {
		t.Errorf("files %v", files)
	}

	if up, err := cp.IsRunning(ctx, ws, inst.ID); !up || err != nil {
		t.Errorf("running: %v %v", up, err)
	}
	if up, err := cp.IsRunning(ctx, ws, "i-unknown"); up || err != nil {
		t.Errorf("unknown instance: %v %v, want (false, nil)", up, err)
	}
	f.mu.Lock()
	f.statusErr = http.StatusBadGateway
	f.mu.Unlock()
	up, err := cp.IsRunning(ctx, ws, inst.ID)
	var cpe *CPError
	if !up || !errors.As(err, &cpe) || cpe.Status != 502 || strings.Contains(err.Error(), "secret-ish") {
		t.Errorf("5xx: %v %v, want (true, CPError 502 without body text)", up, err)
	}
	f.mu.Lock()
	f.statusErr = 0
	f.mu.Unlock()

	if err := cp.Remove(ctx, ws, inst.ID); err != nil {
		t.Fatal(err)
	}
	if err := cp.Remove(ctx, ws, inst.ID); err != nil {
		t.Errorf("second remove (404) = %v, want nil", err)
	}
	if up, err := cp.IsRunning(ctx, ws, inst.ID); up || err != nil {
		t.Errorf("after remove: %v %v", up, err)
	}
	if _, err := cp.ReadFile(ctx, ws, "config.yaml"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("files: %v", err)
	}

	// Wrong secret: provisioning fails with the status only.
	bad, _ := NewControlPlane(ControlPlaneOptions{BaseURL: srv.URL, SharedSecret: "wrong", OrgID: "org-1"})
	if _, err := bad.Start(ctx, Spec{WorkspaceID: ws}); !errors.As(err, &cpe) || cpe.Status != 401 {
		t.Errorf("wrong secret: %v", err)
	}

	// Transport failure (closed server, short timeout): transient → (true, err).
	srv.Close()
	dead, _ := NewControlPlane(ControlPlaneOptions{BaseURL: srv.URL, SharedSecret: "s3cret", OrgID: "org-1",
		HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	if up, err := dead.IsRunning(ctx, ws, "i-1"); !up || err == nil {
		t.Errorf("refused: %v %v, want (true, err)", up, err)
	}

	for _, o := range []ControlPlaneOptions{{BaseURL: "ftp://x", OrgID: "o"}, {BaseURL: "", OrgID: "o"}, {BaseURL: "https://x"}} {
		if _, err := NewControlPlane(o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
