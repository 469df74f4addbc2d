package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/store"
	"github.com/moleculesai/molecule/internal/testutil"
)

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}}
}

func doBench(b *testing.B, cl *http.Client, method, url, bearer, body string, want int) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := cl.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Errorf("%s %s: %d", method, url, resp.StatusCode)
	}
}

// 16 concurrent callers (parallelism 8 × GOMAXPROCS 2) over HTTP, each
// writing its own key with a workspace token: the full request path
// (auth, workspace load, upsert).
func BenchmarkMemorySetHTTP(b *testing.B) {
	in := apptest.Start(b, apptest.Options{})
	ws, tok := in.CreateWorkspaceRow("bench", nil)
	url := in.URL + "/workspaces/" + ws.String() + "/memory"
	cl := benchClient()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := "k" + strconv.FormatInt(n.Add(1), 10)
		i := 0
		for pb.Next() {
			i++
			doBench(b, cl, "POST", url, tok, fmt.Sprintf(`{"key":%q,"value":{"n":%d}}`, key, i), 200)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkMemoryGetHTTP(b *testing.B) {
	in := apptest.Start(b, apptest.Options{})
	ws, tok := in.CreateWorkspaceRow("bench", nil)
	url := in.URL + "/workspaces/" + ws.String() + "/memory"
	cl := benchClient()
	for i := 0; i < 16; i++ {
		doBench(b, cl, "POST", url, tok, fmt.Sprintf(`{"key":"k%d","value":{"n":%d}}`, i, i), 200)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := url + "/k" + strconv.FormatInt(n.Add(1)%16, 10)
		for pb.Next() {
			doBench(b, cl, "GET", key, tok, "", 200)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// The store alone, for comparison with the HTTP figures.
func BenchmarkMemoryStoreSetGet(b *testing.B) {
	st := testutil.NewStore(b)
	ctx := context.Background()
	in := apptest.CreateWorkspace
	ws, _ := in(b, st, "bench", nil)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := "k" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			if _, err := st.SetMemory(ctx, ws, key, []byte(`{"n":1}`), 0, nil); err != nil {
				b.Error(err)
			}
			if _, err := st.GetMemory(ctx, ws, key); err != nil && err != store.ErrNotFound {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "ops/s")
}

// One event to 1,000 SSE subscribers over real HTTP connections: ns/op is
// the time from Broadcast until the last subscriber has read the event.
func BenchmarkSSEFanout1000(b *testing.B) {
	const subscribers = 1000
	in := apptest.Start(b, apptest.Options{})
	ws, tok := in.CreateWorkspaceRow("bench", nil)
	cl := benchClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(subscribers)
	for i := 0; i < subscribers; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/workspaces/"+ws.String()+"/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := cl.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("stream %d: %v %v", i, resp, err)
		}
		go func() {
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first := true
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if first {
					first = false
					ready.Done()
				}
				if len(line) > 6 && string(line[:6]) == "data: " {
					got.Done()
				}
			}
		}()
	}
	ready.Wait()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got.Add(subscribers)
		start := time.Now()
		in.App.Broadcaster.Broadcast(ctx, "TASK_UPDATED", ws, map[string]int{"i": i})
		got.Wait()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// One event of a parent workspace to 100 agent WebSocket clients (its
// children, each filtered by CanCommunicate without a query per event):
// ns/op is the time until the last agent has read it.
func BenchmarkWSFanout100Agents(b *testing.B) {
	const agents = 100
	in := apptest.Start(b, apptest.Options{})
	root, _ := in.CreateWorkspaceRow("lead", nil)
	var clients []*wsClient
	for i := 0; i < agents; i++ {
		_, tok := in.CreateWorkspaceRow(fmt.Sprintf("agent-%d", i), &root)
		cl, _, err := dialWS(b, in.URL, tok, nil)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)
	}
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		in.App.Broadcaster.Broadcast(ctx, "TASK_UPDATED", root, map[string]int{"i": i})
		for _, cl := range clients {
			if _, ok := <-cl.msgs; !ok {
				b.Fatal("socket closed")
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
