package store_test

import (
	"context"
	"database/sql"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

// BenchmarkHeartbeat measures the heartbeat write (one prepared UPDATE …
// RETURNING) against real Postgres, with 16 agents beating in parallel.
//
//	go test -run '^$' -bench Heartbeat -benchtime 5s ./internal/store/
func BenchmarkHeartbeat(b *testing.B) {
	st := testutil.NewStore(b)
	ctx := context.Background()
	const agents = 16
	ids := make([]uuid.UUID, agents)
	for i := range ids {
		ids[i] = uuid.New()
		err := st.Tx(ctx, func(tx *sql.Tx) error {
			return store.InsertWorkspaceTx(ctx, tx, &store.Workspace{ID: ids[i], Name: "bench", Status: store.StatusOnline, External: true})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(max(1, agents/runtime.GOMAXPROCS(0))) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := ids[int(next.Add(1)-1)%agents]
		n := 0
		for pb.Next() {
			n++
			if _, err := st.Heartbeat(ctx, store.Beat{WorkspaceID: id, ErrorRate: 0.01, ActiveTasks: n % 2,
				CurrentTask: "task", UptimeSeconds: int64(n), MonthlySpend: int64(n)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "beats/s")
}
