package stores

import (
	"encoding/json"
	"fmt"
	"time"
)

// Timestamp is a UTC instant written as the Python apps write one (pydantic): seconds, then
// microseconds only when they are not zero, then Z. Items written by one implementation are
// read back byte for byte by another, so the form matters.
type Timestamp time.Time

// MarshalJSON implements json.Marshaler.
func (t Timestamp) MarshalJSON() ([]byte, error) { return json.Marshal(FormatTime(time.Time(t))) }

// FormatTime is the pydantic form of an instant.
func FormatTime(t time.Time) string {
	t = t.UTC()
	text := t.Format("2006-01-02T15:04:05")
	if micro := t.Nanosecond() / 1000; micro != 0 {
		text += fmt.Sprintf(".%06d", micro)
	}
	return text + "Z"
}

// Now is UTC now at millisecond precision: what every backend stores unchanged.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// QueryResult is DatabaseQueryResult.
type QueryResult struct {
	Database      string `json:"database"`
	ServerVersion string `json:"server_version"`
	ServerTime    string `json:"server_time"`
}

// ItemCreate is a validated ItemCreate.
type ItemCreate struct {
	Name     string
	Quantity int64
}

// Item is a stored item.
type Item struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Quantity  int64     `json:"quantity"`
	CreatedAt Timestamp `json:"created_at"`
}

// ItemList is ItemList.
type ItemList struct {
	Items []Item `json:"items"`
}

// CacheEntry is CacheEntry; TTLSeconds is nil when the key never expires.
type CacheEntry struct {
	Key        string `json:"key"`
	Value      string `json:"value"`
	TTLSeconds *int64 `json:"ttl_seconds"`
}

// PublishResult is PublishResult.
type PublishResult struct {
	Queue     string `json:"queue"`
	MessageID string `json:"message_id"`
}

// ConsumedMessage is ConsumedMessage; Payload is the message's JSON object as it was sent.
type ConsumedMessage struct {
	MessageID   *string         `json:"message_id"`
	Payload     json.RawMessage `json:"payload"`
	Redelivered bool            `json:"redelivered"`
}

// ConsumeResult is ConsumeResult.
type ConsumeResult struct {
	Queue    string            `json:"queue"`
	Messages []ConsumedMessage `json:"messages"`
	Rejected int               `json:"rejected"`
}

// QueueInfo is QueueInfo.
type QueueInfo struct {
	Queue         string `json:"queue"`
	MessageCount  int    `json:"message_count"`
	ConsumerCount int    `json:"consumer_count"`
}

// SlotRange is SlotRange.
type SlotRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// RedisNode is RedisNode.
type RedisNode struct {
	ID        string      `json:"id"`
	Address   string      `json:"address"`
	Role      string      `json:"role"`
	MasterID  *string     `json:"master_id"`
	Connected bool        `json:"connected"`
	Slots     []SlotRange `json:"slots"`
}

// ClusterNodes is RedisClusterNodes.
type ClusterNodes struct {
	Nodes []RedisNode `json:"nodes"`
}

// SlotAssignment is RedisSlotAssignment.
type SlotAssignment struct {
	Start    int      `json:"start"`
	End      int      `json:"end"`
	Master   string   `json:"master"`
	Replicas []string `json:"replicas"`
}

// SlotCoverage is SlotCoverage.
type SlotCoverage struct {
	SlotsAssigned int  `json:"slots_assigned"`
	AllCovered    bool `json:"all_covered"`
}

// ClusterSlots is RedisClusterSlots.
type ClusterSlots struct {
	Ranges   []SlotAssignment `json:"ranges"`
	Coverage SlotCoverage     `json:"coverage"`
}

// ClusterInfo is RedisClusterInfo.
type ClusterInfo struct {
	ClusterState         string `json:"cluster_state"`
	ClusterSlotsAssigned int    `json:"cluster_slots_assigned"`
	ClusterSlotsOK       int    `json:"cluster_slots_ok"`
	ClusterSlotsPfail    int    `json:"cluster_slots_pfail"`
	ClusterSlotsFail     int    `json:"cluster_slots_fail"`
	ClusterKnownNodes    int    `json:"cluster_known_nodes"`
	ClusterSize          int    `json:"cluster_size"`
	ClusterCurrentEpoch  int    `json:"cluster_current_epoch"`
}

// NodeInfo is RedisNodeInfo.
type NodeInfo struct {
	Node             string `json:"node"`
	Role             string `json:"role"`
	RedisVersion     string `json:"redis_version"`
	UptimeSeconds    int64  `json:"uptime_seconds"`
	ConnectedClients int64  `json:"connected_clients"`
	UsedMemoryBytes  int64  `json:"used_memory_bytes"`
	Keys             int64  `json:"keys"`
}
