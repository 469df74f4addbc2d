package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/app"
	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/config"
	"github.com/moleculesai/molecule/internal/testutil"
)

// BenchmarkA2AProxy calls one trivial JSON-RPC agent directly and through
// the proxy in the same run, at 1 and 16 concurrent callers, and reports
// the p50 latency and calls/s of each. The server runs as in production
// (LOG_LEVEL=info, caches warm); caller and target are sibling workspaces
// so every call passes the access, budget and metering paths.
//
//	go test -run '^$' -bench A2AProxy -benchtime 20000x ./internal/api/
func BenchmarkA2AProxy(b *testing.B) {
	dsn := testutil.NewDatabase(b)
	cfg, err := config.Load(config.FromMap(map[string]string{
		"DATABASE_URL": dsn, "MOLECULE_LISTEN": "127.0.0.1:0", "MOLECULE_DATA_DIR": b.TempDir(),
		"ADMIN_TOKEN": "admin-" + uuid.NewString(), "MOLECULE_PROVISIONER": "none", "LOG_LEVEL": "info",
	}))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := a.Listen()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.Close() }()

	answer := []byte(`{"jsonrpc":"2.0","id":"1","result":{"kind":"message","role":"agent","messageId":"m2","parts":[{"kind":"text","text":"pong"}],"usage":{"input_tokens":12,"output_tokens":3}}}`)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer agent.Close()

	parent, _ := apptest.CreateWorkspace(b, a.Store, "parent", nil)
	_, callerTok := apptest.CreateWorkspace(b, a.Store, "caller", &parent)
	target, _ := apptest.CreateWorkspace(b, a.Store, "target", &parent)
	if _, err := a.Store.DB.Exec(`UPDATE workspaces SET url = $2, budget_limit = 100000000 WHERE id = $1`, target, agent.URL); err != nil {
		b.Fatal(err)
	}
	a.Server.InvalidateA2A(target)
	proxyURL := "http://" + ln.Addr().String() + "/workspaces/" + target.String() + "/a2a"
	body := []byte(`{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"ping"}]}}}`)

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	call := func(url, bearer string) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	// Warm up connections and caches.
	for range 200 {
		if err := call(proxyURL, callerTok); err != nil {
			b.Fatal(err)
		}
	}
	for _, conc := range []int{1, 16} {
		for _, mode := range []struct{ name, url, bearer string }{
			{"direct", agent.URL, ""},
			{"proxy", proxyURL, callerTok},
		} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode.name, conc), func(b *testing.B) {
				lat := make([]time.Duration, b.N)
				var next int64
				var mu sync.Mutex
				var wg sync.WaitGroup
				var failure error
				b.ResetTimer()
				start := time.Now()
				for range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							mu.Lock()
							i := next
							next++
							mu.Unlock()
							if i >= int64(b.N) {
								return
							}
							t0 := time.Now()
							if err := call(mode.url, mode.bearer); err != nil {
								mu.Lock()
								failure = err
								mu.Unlock()
								return
							}
							lat[i] = time.Since(t0)
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if failure != nil {
					b.Fatal(failure)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			})
		}
	}
}
