package provisionertest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/provisioner"
)

func TestLifecycleRecords(t *testing.T) {
	ctx := context.Background()
	f := New()
	a, b := uuid.New(), uuid.New()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = f.Provision(ctx, a)
			_ = f.WriteFiles(ctx, b, map[string][]byte{"dir/x.md": []byte("x")})
		}()
	}
	wg.Wait()
	if f.Count("provision", a) != 8 || f.Count("provision", b) != 0 || f.Total("write") != 8 || len(f.Calls()) != 16 {
		t.Fatalf("calls %v", f.Calls())
	}
	if got, _ := f.ReadFile(ctx, b, "dir/x.md"); string(got) != "x" {
		t.Fatalf("read %q", got)
	}
	if _, err := f.ReadFile(ctx, a, "dir/x.md"); !errors.Is(err, provisioner.ErrNotFound) {
		t.Fatalf("another workspace's file: %v", err)
	}
	if err := f.DeletePath(ctx, b, "dir"); err != nil || len(f.Files(b)) != 0 {
		t.Fatalf("delete dir: %v %v", err, f.Files(b))
	}
	if err := f.DeletePath(ctx, b, "dir"); !errors.Is(err, provisioner.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if ok, err := f.IsRunning(ctx, a); !ok || err != nil {
		t.Fatalf("default IsRunning: %v %v", ok, err)
	}
}

func TestLifecycleScriptedFailures(t *testing.T) {
	ctx := context.Background()
	f := New()
	id := uuid.New()
	boom := errors.New("boom")
	f.SetProvisionErr(boom)
	if err := f.Provision(ctx, id); !errors.Is(err, boom) {
		t.Fatalf("provision: %v", err)
	}
	f.SetFilesErr(boom)
	if _, err := f.ListFiles(ctx, id, "", 1); !errors.Is(err, boom) {
		t.Fatalf("list: %v", err)
	}
	f.SetNoBackend(true)
	if err := f.WriteFiles(ctx, id, map[string][]byte{"a": nil}); !errors.Is(err, provisioner.ErrNoBackend) {
		t.Fatalf("write without backend: %v", err)
	}
	if err := f.Provision(ctx, id); !errors.Is(err, provisioner.ErrNoBackend) {
		t.Fatalf("provision without backend: %v", err)
	}
	if f.Total("write") != 1 || len(f.Files(id)) != 0 {
		t.Fatalf("a failed write must be recorded and change nothing: %v %v", f.Calls(), f.Files(id))
	}
	f.SetRunning(false, boom)
	if ok, err := f.IsRunning(ctx, id); ok || !errors.Is(err, boom) {
		t.Fatalf("scripted IsRunning: %v %v", ok, err)
	}
	if f.Count("isrunning", id) != 1 {
		t.Fatalf("IsRunning not recorded: %v", f.Calls())
	}
}
