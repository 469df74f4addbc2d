package api_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moleculesai/molecule/internal/apptest"
	"github.com/moleculesai/molecule/internal/testutil"
)

// Two replicas on one database and one Redis: an event published on either
// reaches SSE and WebSocket clients of the other.
func TestCrossReplicaDelivery(t *testing.T) {
	prefix := testutil.UniquePrefix()
	one := apptest.Start(t, apptest.Options{Redis: true, Prefix: prefix})
	two := apptest.Start(t, apptest.Options{DSN: one.DSN, Redis: true, Prefix: prefix})
	a, tokA := one.CreateWorkspaceRow("a", nil)
	b, _ := one.CreateWorkspaceRow("b", nil)
	ctx := context.Background()

	stream, _ := openSSE(t, two.URL, a, tokA, "")
	admin, _, err := dialWS(t, two.URL, two.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForRedis(t, one, two)

	one.App.Broadcaster.Broadcast(ctx, "TASK_UPDATED", b, nil) // other workspace
	ev, err := one.App.Broadcaster.Record(ctx, "AGENT_MESSAGE", a, map[string]string{"text": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	f, env := stream.next(t)
	if f.ID != strconv.FormatInt(ev.ID, 10) || env.Type != "AGENT_MESSAGE" {
		t.Fatalf("replica two SSE got %+v %+v, want event %d", f, env, ev.ID)
	}
	msgs := admin.until(t, "AGENT_MESSAGE")
	if got := workspacesOf(msgs); !got[a] || !got[b] {
		t.Fatalf("replica two admin socket: %+v", msgs)
	}
	// The other direction, and no duplicates on the publishing replica.
	back, _ := openSSE(t, one.URL, a, tokA, "")
	two.App.Broadcaster.Broadcast(ctx, "WORKSPACE_HEARTBEAT", a, map[string]int{"n": 1})
	two.App.Broadcaster.Broadcast(ctx, "END", a, nil)
	if _, env := back.next(t); env.Type != "WORKSPACE_HEARTBEAT" {
		t.Fatalf("replica one got %+v", env)
	}
	if _, env := back.next(t); env.Type != "END" {
		t.Fatalf("replica one got %+v, want END right after (no duplicate)", env)
	}
}

// waitForRedis waits until Redis counts every replica's subscription to the
// event channel (subscribing is asynchronous at start and after an outage).
func waitForRedis(t *testing.T, replicas ...*apptest.Instance) {
	t.Helper()
	ctx := context.Background()
	for _, in := range replicas {
		deadline := time.Now().Add(15 * time.Second)
		for {
			n, err := in.App.Redis.PubSubNumSub(ctx, in.App.Config.RedisPrefix+":events").Result()
			if err == nil && n[in.App.Config.RedisPrefix+":events"] >= int64(len(replicas)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replicas never all subscribed: %v %v", n, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startRedis runs a private redis-server on port; the test owns it and may
// kill it (never the shared one).
func startRedis(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	bin := testutil.NeedCommand(t, "redis-server")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			return cmd
		}
		if i > 200 {
			t.Fatal("private redis-server did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Redis dies while a stream is open: the stream stays up, local events keep
// flowing (the broadcaster falls back to this replica), and after Redis
// returns the subscription comes back. Nothing panics.
func TestRedisOutageKeepsStreams(t *testing.T) {
	port := freePort(t)
	redisProc := startRedis(t, port)
	in := apptest.Start(t, apptest.Options{Env: map[string]string{
		"REDIS_URL":             fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		"MOLECULE_REDIS_PREFIX": testutil.UniquePrefix(),
	}})
	a, tokA := in.CreateWorkspaceRow("a", nil)
	ctx := context.Background()
	stream, _ := openSSE(t, in.URL, a, tokA, "")
	sock, _, err := dialWS(t, in.URL, tokA, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForRedis(t, in)
	in.App.Broadcaster.Broadcast(ctx, "BEFORE", a, nil)
	if _, env := stream.next(t); env.Type != "BEFORE" {
		t.Fatalf("got %+v", env)
	}

	_ = redisProc.Process.Kill()
	_ = redisProc.Wait()
	ev, err := in.App.Broadcaster.Record(ctx, "DURING", a, map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if f, env := stream.next(t); env.Type != "DURING" || f.ID != strconv.FormatInt(ev.ID, 10) {
		t.Fatalf("during outage got %+v %+v", f, env)
	}
	sock.until(t, "DURING")
	expectStatus(t, in.Do("GET", "/workspaces/"+a.String()+"/memory", tokA, nil), 200, "API during the outage")

	startRedis(t, port)
	waitForRedis(t, in) // the transport re-subscribes by itself
	in.App.Broadcaster.Broadcast(ctx, "AFTER", a, nil)
	if _, env := stream.next(t); env.Type != "AFTER" {
		t.Fatalf("after outage got %+v", env)
	}
	sock.until(t, "AFTER")
}
