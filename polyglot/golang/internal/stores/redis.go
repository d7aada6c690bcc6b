package stores

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/vault"
)

// NewRedisPool is a cluster-aware client: it follows MOVED/ASK and reaches every master over
// TLS (the TLS ports), verified against the stack's CA.
func NewRedisPool(cfg config.Config, store *secrets.Store, trust *Trust, log *slog.Logger) *Pool[*redis.ClusterClient] {
	target := plainOrTLS(cfg, "redis")
	return NewPool(Driver[*redis.ClusterClient]{
		Name: "redis",
		Build: func(_ context.Context, s *vault.Secret) (*redis.ClusterClient, error) {
			opts := &redis.ClusterOptions{
				Addrs:           []string{target(s)},
				Username:        str(s, "user"),
				Password:        str(s, "password"),
				DialTimeout:     cfg.ConnectTimeout,
				ReadTimeout:     cfg.OperationTimeout,
				WriteTimeout:    cfg.OperationTimeout,
				PoolSize:        cfg.PoolMaxSize,
				MinIdleConns:    0,
				DisableIdentity: true,
				MaintNotificationsConfig: &maintnotifications.Config{
					Mode: maintnotifications.ModeDisabled,
				},
			}
			if TLSEnabled(s) {
				// No ServerName: each node is verified under the address it announces.
				opts.TLSConfig = trust.Config("")
			}
			return redis.NewClusterClient(opts), nil
		},
		Close:  func(c *redis.ClusterClient) { _ = c.Close() },
		Target: target,
		IsAuthError: func(err error) bool {
			msg := err.Error()
			return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH")
		},
	}, cfg, store, log)
}

// -- cache ----------------------------------------------------------------------------------

var cacheKey = regexp.MustCompile(`^[A-Za-z0-9:_.\-]{1,200}$`)

// MaxCacheTTL is the largest ttl_seconds.
const MaxCacheTTL = 86400

// ValidCacheKey is the contract's rule for a cache key.
func ValidCacheKey(key string) bool { return cacheKey.MatchString(key) && key != "." && key != ".." }

// One script on the key's master: value and TTL read atomically, in one round trip.
var getWithTTL = redis.NewScript("return {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}")

// Cache stores string values in the cluster under a prefix (cache:<key>).
type Cache struct {
	pool   *Pool[*redis.ClusterClient]
	prefix string
}

// NewCache wraps the pool.
func NewCache(pool *Pool[*redis.ClusterClient], prefix string) *Cache {
	return &Cache{pool: pool, prefix: prefix}
}

func (c *Cache) redisKey(key string) (string, error) {
	if !ValidCacheKey(key) {
		return "", apperr.Invalid(nil, "a cache key is 1-200 of A-Z a-z 0-9 : _ . - (not . or ..)")
	}
	return c.prefix + key, nil
}

// Get reads a value and its remaining TTL.
func (c *Cache) Get(ctx context.Context, key string) (CacheEntry, error) {
	name, err := c.redisKey(key)
	if err != nil {
		return CacheEntry{}, err
	}
	return Run(ctx, c.pool, "cache get", func(ctx context.Context, rc *redis.ClusterClient) (CacheEntry, error) {
		result, err := getWithTTL.Run(ctx, rc, []string{name}).Slice()
		if err != nil {
			return CacheEntry{}, err
		}
		if len(result) != 2 || result[0] == nil {
			return CacheEntry{}, apperr.NotFound("cache key %s does not exist", apperr.Repr(key))
		}
		entry := CacheEntry{Key: key, Value: fmt.Sprint(result[0])}
		if ttl, ok := result[1].(int64); ok && ttl >= 0 {
			entry.TTLSeconds = &ttl
		}
		return entry, nil
	})
}

// Put stores a value (without ttl the key never expires, and a TTL it had is removed); created
// is true when the key did not exist.
func (c *Cache) Put(ctx context.Context, key, value string, ttl *int64) (CacheEntry, bool, error) {
	name, err := c.redisKey(key)
	if err != nil {
		return CacheEntry{}, false, err
	}
	if ttl != nil && (*ttl < 1 || *ttl > MaxCacheTTL) {
		return CacheEntry{}, false, apperr.Invalid(nil, "ttl_seconds must be between 1 and %d", MaxCacheTTL)
	}
	created, err := Run(ctx, c.pool, "cache put", func(ctx context.Context, rc *redis.ClusterClient) (bool, error) {
		args := redis.SetArgs{Get: true}
		if ttl != nil {
			args.TTL = secondsDuration(*ttl)
		}
		err := rc.SetArgs(ctx, name, value, args).Err()
		if errors.Is(err, redis.Nil) {
			return true, nil
		}
		return false, err
	})
	return CacheEntry{Key: key, Value: value, TTLSeconds: ttl}, created, err
}

// Delete removes a value; NotFound when there was none.
func (c *Cache) Delete(ctx context.Context, key string) error {
	name, err := c.redisKey(key)
	if err != nil {
		return err
	}
	_, err = Run(ctx, c.pool, "cache delete", func(ctx context.Context, rc *redis.ClusterClient) (struct{}, error) {
		n, err := rc.Del(ctx, name).Result()
		if err == nil && n == 0 {
			err = apperr.NotFound("cache key %s does not exist", apperr.Repr(key))
		}
		return struct{}{}, err
	})
	return err
}

// -- the cluster's own view ----------------------------------------------------------------------

// Cluster describes the Redis Cluster.
type Cluster struct{ pool *Pool[*redis.ClusterClient] }

// NewCluster wraps the pool.
func NewCluster(pool *Pool[*redis.ClusterClient]) *Cluster { return &Cluster{pool: pool} }

// Probe is the health check: CLUSTER INFO says ok and every master answers PING.
func (c *Cluster) Probe(ctx context.Context) (state string, err error) {
	return Run(ctx, c.pool, "health", func(ctx context.Context, rc *redis.ClusterClient) (string, error) {
		attempts := rc.Options().PoolSize + 1
		var info string
		if err := againOnBrokenConn(ctx, attempts, func() (err error) {
			info, err = rc.ClusterInfo(ctx).Result()
			return err
		}); err != nil {
			return "", err
		}
		if err := rc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return againOnBrokenConn(ctx, attempts, func() error { return node.Ping(ctx).Err() })
		}); err != nil {
			return "", err
		}
		return parseFields(info)["cluster_state"], nil
	})
}

// againOnBrokenConn runs call until it does not fail on a connection that was already open,
// at most attempts times (a pool's size plus one).
//
// After a master was killed and restarted, its pool still holds the connections to the old
// process. go-redis does not check an idle TLS connection before it hands it out (its check
// reads the socket of plain TCP only), and a cluster's node clients do not retry (the
// cluster's MaxRetries is off; its own commands retry through MOVED/ASK handling). So a PING
// sent to the master directly failed on one dead connection per call, and the health check
// stayed unavailable, long after the master was back, until every dead connection had been
// used once, while the cache routes worked. Each failure here removes that connection from
// the pool; a new connection that cannot be dialled (the master is down), a server's error
// or the deadline ends the loop with that answer.
func againOnBrokenConn(ctx context.Context, attempts int, call func() error) error {
	var err error
	for range max(attempts, 1) {
		if err = call(); err == nil || !brokenConn(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// brokenConn: err is the failure of an open connection (its peer is gone), not of a dial.
func brokenConn(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "read" || op.Op == "write"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Nodes is every node the cluster knows, sorted by address.
func (c *Cluster) Nodes(ctx context.Context) ([]RedisNode, error) {
	return Run(ctx, c.pool, "cluster nodes", func(ctx context.Context, rc *redis.ClusterClient) ([]RedisNode, error) {
		raw, err := rc.ClusterNodes(ctx).Result()
		if err != nil {
			return nil, err
		}
		return ParseClusterNodes(raw), nil
	})
}

// Slots is the slot ranges, sorted, and their coverage.
func (c *Cluster) Slots(ctx context.Context) (ClusterSlots, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return ClusterSlots{}, err
	}
	return SlotsOf(nodes), nil
}

// SlotsOf derives the slot assignment from the nodes.
func SlotsOf(nodes []RedisNode) ClusterSlots {
	byID := map[string]bool{}
	for _, n := range nodes {
		byID[n.ID] = true
	}
	replicas := map[string][]string{}
	for _, n := range nodes {
		if n.Role == "replica" && n.MasterID != nil && byID[*n.MasterID] {
			replicas[*n.MasterID] = append(replicas[*n.MasterID], n.Address)
		}
	}
	ranges := []SlotAssignment{}
	for _, n := range nodes {
		if n.Role != "master" {
			continue
		}
		reps := append([]string{}, replicas[n.ID]...)
		sort.Strings(reps)
		for _, r := range n.Slots {
			ranges = append(ranges, SlotAssignment{Start: r.Start, End: r.End, Master: n.Address, Replicas: reps})
		}
	}
	sort.SliceStable(ranges, func(i, j int) bool { return ranges[i].Start < ranges[j].Start })
	assigned := 0
	for _, r := range ranges {
		assigned += r.End - r.Start + 1
	}
	return ClusterSlots{Ranges: ranges, Coverage: SlotCoverage{SlotsAssigned: assigned, AllCovered: assigned == 16384}}
}

// Info is CLUSTER INFO.
func (c *Cluster) Info(ctx context.Context) (ClusterInfo, error) {
	return Run(ctx, c.pool, "cluster info", func(ctx context.Context, rc *redis.ClusterClient) (ClusterInfo, error) {
		raw, err := rc.ClusterInfo(ctx).Result()
		if err != nil {
			return ClusterInfo{}, err
		}
		f := parseFields(raw)
		n := func(k string) int { v, _ := strconv.Atoi(f[k]); return v }
		state := f["cluster_state"]
		if state == "" {
			state = "fail"
		}
		return ClusterInfo{
			ClusterState: state, ClusterSlotsAssigned: n("cluster_slots_assigned"), ClusterSlotsOK: n("cluster_slots_ok"),
			ClusterSlotsPfail: n("cluster_slots_pfail"), ClusterSlotsFail: n("cluster_slots_fail"),
			ClusterKnownNodes: n("cluster_known_nodes"), ClusterSize: n("cluster_size"), ClusterCurrentEpoch: n("cluster_current_epoch"),
		}, nil
	})
}

// NodeInfo is INFO of one node the cluster lists; any other name is NotFound without a
// connection attempt.
func (c *Cluster) NodeInfo(ctx context.Context, node string) (NodeInfo, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return NodeInfo{}, err
	}
	listed := false
	for _, n := range nodes {
		listed = listed || n.Address == node
	}
	if !listed {
		return NodeInfo{}, apperr.NotFound("the cluster has no node %s", apperr.Repr(node))
	}
	return Run(ctx, c.pool, "node info", func(ctx context.Context, rc *redis.ClusterClient) (NodeInfo, error) {
		var mu sync.Mutex
		var found *redis.Client
		err := rc.ForEachShard(ctx, func(_ context.Context, shard *redis.Client) error {
			if shard.Options().Addr == node {
				mu.Lock()
				found = shard
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return NodeInfo{}, err
		}
		if found == nil {
			return NodeInfo{}, apperr.Unavailable("redis", "node "+node+" is not connected", nil)
		}
		raw, err := found.Info(ctx).Result()
		if err != nil {
			return NodeInfo{}, err
		}
		keys, err := found.DBSize(ctx).Result()
		if err != nil {
			return NodeInfo{}, err
		}
		f := parseFields(raw)
		n := func(k string) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
		role := "master"
		if f["role"] == "slave" || f["role"] == "replica" {
			role = "replica"
		}
		return NodeInfo{
			Node: node, Role: role, RedisVersion: f["redis_version"], UptimeSeconds: n("uptime_in_seconds"),
			ConnectedClients: n("connected_clients"), UsedMemoryBytes: n("used_memory"), Keys: keys,
		}, nil
	})
}

func parseFields(raw string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// ParseClusterNodes reads CLUSTER NODES lines:
// <id> <ip:port@bus[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
func ParseClusterNodes(raw string) []RedisNode {
	nodes := []RedisNode{}
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		parts := strings.Fields(line)
		if len(parts) < 8 {
			continue
		}
		address, _, _ := strings.Cut(parts[1], "@")
		flags := map[string]bool{}
		for _, f := range strings.Split(parts[2], ",") {
			flags[f] = true
		}
		slots := []SlotRange{}
		for _, spec := range parts[8:] {
			if strings.HasPrefix(spec, "[") {
				continue
			}
			lo, hi, found := strings.Cut(spec, "-")
			start, err1 := strconv.Atoi(lo)
			end := start
			var err2 error
			if found {
				end, err2 = strconv.Atoi(hi)
			}
			if err1 == nil && err2 == nil {
				slots = append(slots, SlotRange{Start: start, End: end})
			}
		}
		sort.Slice(slots, func(i, j int) bool { return slots[i].Start < slots[j].Start })
		role := "replica"
		if flags["master"] {
			role = "master"
		}
		var masterID *string
		if parts[3] != "-" {
			m := parts[3]
			masterID = &m
		}
		nodes = append(nodes, RedisNode{
			ID: parts[0], Address: address, Role: role, MasterID: masterID,
			Connected: parts[7] == "connected" && !flags["fail"] && !flags["fail?"],
			Slots:     slots,
		})
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Address < nodes[j].Address })
	return nodes
}
