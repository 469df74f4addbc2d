package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/apptest"
)

// BenchmarkHeartbeatHTTP is the load scenario of the heartbeat path: N
// agents (each with its own workspace and token) beat concurrently over
// HTTP against a full server (auth cache, validation, one UPDATE …
// RETURNING, event fan-out) on real Postgres. It reports beats/s and the
// CPU this process spent per beat (server and load generator together, so
// an upper bound on the server's share; Postgres is another process).
//
//	go test -run '^$' -bench HeartbeatHTTP -benchtime 5s ./internal/api/
func BenchmarkHeartbeatHTTP(b *testing.B) {
	for _, agents := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("agents=%d", agents), func(b *testing.B) { benchHeartbeats(b, agents) })
	}
}

func benchHeartbeats(b *testing.B, agents int) {
	in := apptest.Start(b, apptest.Options{Env: map[string]string{"LOG_LEVEL": "warn"}})
	type agent struct {
		id   uuid.UUID
		tok  string
		body []byte
	}
	list := make([]agent, agents)
	for i := range list {
		id, tok := in.CreateWorkspaceRow(fmt.Sprintf("agent-%d", i), nil)
		list[i] = agent{id: id, tok: tok, body: []byte(`{"workspace_id":"` + id.String() +
			`","error_rate":0.01,"active_tasks":1,"current_task":"working","uptime_seconds":120,"monthly_spend":250}`)}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: agents * 2, MaxConnsPerHost: 0}}
	url := in.URL + "/registry/heartbeat"
	var next atomic.Int64
	b.SetParallelism(max(1, agents/runtime.GOMAXPROCS(0)))
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		a := list[int(next.Add(1)-1)%agents]
		for pb.Next() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(a.body))
			req.Header.Set("Authorization", "Bearer "+a.tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "beats/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/beat")
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
