package stores

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// fakeRedis answers PING with PONG (and refuses HELLO, so clients speak RESP2). restart closes
// every connection it accepted, as a killed server's are, and goes on accepting new ones on
// the same port, as the restarted server does.
type fakeRedis struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{l: l}
	go f.accept()
	t.Cleanup(func() { _ = l.Close(); f.restart() })
	return f
}

func (f *fakeRedis) accept() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		go serveRESP(c)
	}
}

func serveRESP(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		reply := "+OK\r\n"
		switch strings.ToUpper(args[0]) {
		case "PING":
			reply = "+PONG\r\n"
		case "HELLO":
			reply = "-ERR unknown command 'HELLO'\r\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
	args := make([]string, 0, n)
	for range n {
		if _, err := r.ReadString('\n'); err != nil { // $<length>
			return nil, err
		}
		arg, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args = append(args, strings.TrimSpace(arg))
	}
	if len(args) == 0 {
		args = append(args, "")
	}
	return args, nil
}

func (f *fakeRedis) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

// opaqueConn hides the socket from go-redis's idle check, as a *tls.Conn does.
type opaqueConn struct{ net.Conn }

// A master killed and restarted: its node client's idle connections are all dead. A PING
// on one fails; the probe's PING goes on until a new connection answers.
func TestAMasterRestartedAnswersTheProbeAtOnce(t *testing.T) {
	server := newFakeRedis(t)
	const pool = 4
	var dialer net.Dialer
	node := redis.NewClient(&redis.Options{
		Addr: server.l.Addr().String(),
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return opaqueConn{c}, nil
		},
		PoolSize:                 pool,
		MaxRetries:               -1, // as a cluster's node clients
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	defer node.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Every connection of the pool opened and used, as under load.
	conns := make([]*redis.Conn, pool)
	for i := range conns {
		conns[i] = node.Conn()
		if err := conns[i].Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	if stats := node.PoolStats(); stats.IdleConns != pool {
		t.Fatalf("the pool holds %+v", stats)
	}

	server.restart()
	time.Sleep(50 * time.Millisecond) // the FINs arrive
	if err := node.Ping(ctx).Err(); err == nil || !brokenConn(err) {
		t.Fatalf("a plain PING after the restart: %v, want the dead connection's error", err)
	}
	if err := againOnBrokenConn(ctx, pool+1, func() error { return node.Ping(ctx).Err() }); err != nil {
		t.Fatalf("the probe's PING after the restart: %v", err)
	}

	_ = server.l.Close() // down for good: the dial is refused, and that ends the loop at once
	server.restart()
	time.Sleep(50 * time.Millisecond)
	calls := 0
	err := againOnBrokenConn(ctx, 100, func() error { calls++; return node.Ping(ctx).Err() })
	if err == nil || brokenConn(err) || calls > pool+1 {
		t.Fatalf("a master down: %v after %d calls", err, calls)
	}
}
