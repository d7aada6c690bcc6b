//! The Redis Cluster through the redis crate's async cluster client, on the TLS ports, verified
//! against the stack's CA: the cache, the rate-limit counters and the cluster's description.

use std::collections::HashMap;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::TlsCertificates;
use serde::Serialize;

use super::{bounded, Context, Managed};
use crate::problems::{ApiError, Dependency};
use crate::vault::KvSecret;

const DEP: Dependency = Dependency::Redis;
pub const MAX_CACHE_TTL: i64 = 86400;
/// The value (nil when missing) and the TTL in seconds (-1: none, -2: missing) of KEYS[1].
const GET_WITH_TTL: &str = "return {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}";
/// The rate limiter's counter: one script on the key's own node, atomic, one round trip.
const HIT_SCRIPT: &str =
    "local count = redis.call('INCR', KEYS[1])\nredis.call('EXPIRE', KEYS[1], ARGV[1])\nreturn count";

pub struct Redis {
    ctx: Context,
    managed: Managed<ClusterConnection>,
    get_script: redis::Script,
    hit_script: redis::Script,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CacheEntry {
    pub key: String,
    pub value: String,
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedisNode {
    pub id: String,
    pub address: String,
    pub role: &'static str,
    pub master_id: Option<String>,
    pub connected: bool,
    pub slots: Vec<SlotRange>,
}

#[derive(Debug, Serialize)]
pub struct SlotAssignment {
    pub start: u16,
    pub end: u16,
    pub master: String,
    pub replicas: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SlotCoverage {
    pub slots_assigned: u32,
    pub all_covered: bool,
}

#[derive(Debug, Serialize)]
pub struct ClusterSlots {
    pub ranges: Vec<SlotAssignment>,
    pub coverage: SlotCoverage,
}

#[derive(Debug, Serialize)]
pub struct ClusterInfo {
    pub cluster_state: String,
    pub cluster_slots_assigned: i64,
    pub cluster_slots_ok: i64,
    pub cluster_slots_pfail: i64,
    pub cluster_slots_fail: i64,
    pub cluster_known_nodes: i64,
    pub cluster_size: i64,
    pub cluster_current_epoch: i64,
}

#[derive(Debug, Serialize)]
pub struct NodeInfo {
    pub node: String,
    pub role: &'static str,
    pub redis_version: String,
    pub uptime_seconds: i64,
    pub connected_clients: i64,
    pub used_memory_bytes: i64,
    pub keys: i64,
}

fn address(raw: &str) -> &str {
    raw.split('@').next().unwrap_or(raw)
}

/// CLUSTER NODES: `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`,
/// sorted by address.
pub fn parse_cluster_nodes(raw: &str) -> Vec<RedisNode> {
    let mut nodes: Vec<RedisNode> = raw
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() < 8 {
                return None;
            }
            let flags: Vec<&str> = parts[2].split(',').filter(|f| !f.is_empty()).collect();
            let failing = flags.iter().any(|f| *f == "fail" || *f == "fail?");
            let mut slots: Vec<SlotRange> = parts[8..]
                .iter()
                .filter(|spec| !spec.starts_with('['))
                .filter_map(|spec| {
                    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
                    Some(SlotRange {
                        start: a.parse().ok()?,
                        end: b.parse().ok()?,
                    })
                })
                .collect();
            slots.sort_by_key(|s| s.start);
            Some(RedisNode {
                id: parts[0].to_owned(),
                address: address(parts[1]).to_owned(),
                role: if flags.contains(&"master") {
                    "master"
                } else {
                    "replica"
                },
                master_id: (parts[3] != "-").then(|| parts[3].to_owned()),
                connected: parts[7] == "connected" && !failing,
                slots,
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.address.cmp(&b.address));
    nodes
}

pub fn slots_of(nodes: &[RedisNode]) -> ClusterSlots {
    let ids: HashMap<&str, &RedisNode> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut replicas: HashMap<&str, Vec<String>> = HashMap::new();
    for node in nodes {
        if let Some(master) = node.master_id.as_deref() {
            if node.role == "replica" && ids.contains_key(master) {
                replicas
                    .entry(master)
                    .or_default()
                    .push(node.address.clone());
            }
        }
    }
    let mut ranges: Vec<SlotAssignment> = nodes
        .iter()
        .filter(|n| n.role == "master")
        .flat_map(|n| {
            let mut own = replicas.get(n.id.as_str()).cloned().unwrap_or_default();
            own.sort();
            n.slots.iter().map(move |r| SlotAssignment {
                start: r.start,
                end: r.end,
                master: n.address.clone(),
                replicas: own.clone(),
            })
        })
        .collect();
    ranges.sort_by_key(|r| r.start);
    let assigned: u32 = ranges
        .iter()
        .map(|r| u32::from(r.end.saturating_sub(r.start)) + 1)
        .sum();
    ClusterSlots {
        ranges,
        coverage: SlotCoverage {
            slots_assigned: assigned,
            all_covered: assigned == 16384,
        },
    }
}

/// `key:value` lines (INFO, CLUSTER INFO).
pub fn parse_info(raw: &str) -> HashMap<String, String> {
    raw.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(info: &HashMap<String, String>, key: &str) -> i64 {
    info.get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Redis {
    pub fn new(ctx: Context) -> Self {
        Redis {
            ctx,
            managed: Managed::new(DEP),
            get_script: redis::Script::new(GET_WITH_TTL),
            hit_script: redis::Script::new(HIT_SCRIPT),
        }
    }

    async fn build(&self, secret: &KvSecret) -> Result<ClusterConnection, ApiError> {
        let s = &self.ctx.settings;
        let tls = secret.tls_enabled();
        let (host, port) = s.endpoint("redis", tls);
        let scheme = if tls { "rediss" } else { "redis" };
        let password = secret
            .secret("password")
            .ok_or_else(|| ApiError::unavailable(DEP, "the secret has no password"))?;
        let mut builder = ClusterClientBuilder::new(vec![format!("{scheme}://{host}:{port}")])
            .password(password.expose().to_owned())
            .connection_timeout(s.connect_timeout)
            .response_timeout(s.operation_timeout)
            .retries(1)
            .min_retry_wait(10)
            .max_retry_wait(100);
        if let Some(user) = secret.text("user").filter(|u| !u.is_empty()) {
            builder = builder.username(user.to_owned());
        }
        if tls {
            builder = builder.certs(TlsCertificates {
                client_tls: None,
                root_cert: Some(self.ctx.trust.ca_pem.as_bytes().to_vec()),
            });
        }
        let client = builder
            .build()
            .map_err(|_| ApiError::unavailable(DEP, "cannot build the client"))?;
        client
            .get_async_connection()
            .await
            .map_err(|e| self.translate("connect", &e))
    }

    async fn connection(&self) -> Result<ClusterConnection, ApiError> {
        let shared = self
            .managed
            .client(&self.ctx.secrets, |secret| async move {
                self.build(&secret).await
            })
            .await?;
        Ok((*shared).clone())
    }

    fn translate(&self, what: &str, err: &redis::RedisError) -> ApiError {
        if err.kind() == redis::ErrorKind::AuthenticationFailed {
            self.managed.on_auth_error(&self.ctx.secrets);
            return ApiError::unavailable(DEP, format!("{what}: authentication failed"));
        }
        if err.is_timeout() {
            return ApiError::timeout(DEP, format!("{what}: timed out"));
        }
        ApiError::unavailable(DEP, format!("{what}: {}", err.category()))
    }

    async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, ApiError>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let timeout = self.ctx.settings.operation_timeout;
        bounded(DEP, what, timeout, async {
            let conn = self.connection().await?;
            op(conn).await.map_err(|e| self.translate(what, &e))
        })
        .await
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.ctx.settings.cache_key_prefix)
    }

    // -- cache ------------------------------------------------------------------------------

    pub async fn cache_get(&self, key: &str) -> Result<CacheEntry, ApiError> {
        let name = self.redis_key(key);
        let script = &self.get_script;
        let (value, ttl): (Option<String>, i64) = self
            .run("cache get", |mut conn| async move {
                script.key(&name).invoke_async(&mut conn).await
            })
            .await?;
        match value {
            None => Err(ApiError::NotFound(format!(
                "cache key '{key}' does not exist"
            ))),
            Some(value) => Ok(CacheEntry {
                key: key.to_owned(),
                value,
                ttl_seconds: (ttl >= 0).then_some(ttl),
            }),
        }
    }

    /// Store `value`; returns the entry and whether the key was created (else replaced).
    /// Without a TTL the key never expires (a TTL it had is removed).
    pub async fn cache_put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: Option<i64>,
    ) -> Result<(CacheEntry, bool), ApiError> {
        let name = self.redis_key(key);
        let mut command = redis::cmd("SET");
        command.arg(&name).arg(value);
        if let Some(ttl) = ttl_seconds {
            command.arg("EX").arg(ttl);
        }
        command.arg("GET");
        let previous: Option<String> = self
            .run("cache put", |mut conn| async move {
                command.query_async(&mut conn).await
            })
            .await?;
        Ok((
            CacheEntry {
                key: key.to_owned(),
                value: value.to_owned(),
                ttl_seconds,
            },
            previous.is_none(),
        ))
    }

    pub async fn cache_delete(&self, key: &str) -> Result<(), ApiError> {
        let name = self.redis_key(key);
        let deleted: i64 = self
            .run("cache delete", |mut conn| async move {
                redis::cmd("DEL").arg(&name).query_async(&mut conn).await
            })
            .await?;
        if deleted == 0 {
            return Err(ApiError::NotFound(format!(
                "cache key '{key}' does not exist"
            )));
        }
        Ok(())
    }

    /// One hit on a rate-limit counter; returns the count in its window.
    pub async fn rate_limit_hit(&self, key: &str, expire_seconds: u64) -> Result<i64, ApiError> {
        let script = &self.hit_script;
        self.run("rate limit", |mut conn| async move {
            script
                .key(key)
                .arg(expire_seconds)
                .invoke_async(&mut conn)
                .await
        })
        .await
    }

    // -- the cluster ----------------------------------------------------------------------------

    pub async fn nodes(&self) -> Result<Vec<RedisNode>, ApiError> {
        let raw: String = self
            .run("cluster nodes", |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(parse_cluster_nodes(&raw))
    }

    pub async fn slots(&self) -> Result<ClusterSlots, ApiError> {
        Ok(slots_of(&self.nodes().await?))
    }

    async fn cluster_info_map(&self, what: &str) -> Result<HashMap<String, String>, ApiError> {
        let raw: String = self
            .run(what, |mut conn| async move {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(parse_info(&raw))
    }

    pub async fn info(&self) -> Result<ClusterInfo, ApiError> {
        let info = self.cluster_info_map("cluster info").await?;
        Ok(ClusterInfo {
            cluster_state: info
                .get("cluster_state")
                .cloned()
                .unwrap_or_else(|| "fail".into()),
            cluster_slots_assigned: number(&info, "cluster_slots_assigned"),
            cluster_slots_ok: number(&info, "cluster_slots_ok"),
            cluster_slots_pfail: number(&info, "cluster_slots_pfail"),
            cluster_slots_fail: number(&info, "cluster_slots_fail"),
            cluster_known_nodes: number(&info, "cluster_known_nodes"),
            cluster_size: number(&info, "cluster_size"),
            cluster_current_epoch: number(&info, "cluster_current_epoch"),
        })
    }

    /// INFO of one node named `host:port` as the cluster lists it; any other name is a 404
    /// without a connection attempt.
    pub async fn node_info(&self, node: &str) -> Result<NodeInfo, ApiError> {
        let listed = self.nodes().await?;
        if !listed.iter().any(|n| n.address == node) {
            return Err(ApiError::NotFound(format!(
                "the cluster has no node '{node}'"
            )));
        }
        let (host, port) = node
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| ApiError::NotFound(format!("the cluster has no node '{node}'")))?;
        let route = || {
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port,
            })
        };
        let (info, keys): (String, i64) = self
            .run("node info", |mut conn| async move {
                let info = conn.route_command(&redis::cmd("INFO"), route()).await?;
                let keys = conn.route_command(&redis::cmd("DBSIZE"), route()).await?;
                Ok((
                    redis::from_redis_value(&info)?,
                    redis::from_redis_value(&keys)?,
                ))
            })
            .await?;
        let info = parse_info(&info);
        let role = info.get("role").map(String::as_str).unwrap_or("master");
        Ok(NodeInfo {
            node: node.to_owned(),
            role: if matches!(role, "slave" | "replica") {
                "replica"
            } else {
                "master"
            },
            redis_version: info.get("redis_version").cloned().unwrap_or_default(),
            uptime_seconds: number(&info, "uptime_in_seconds"),
            connected_clients: number(&info, "connected_clients"),
            used_memory_bytes: number(&info, "used_memory"),
            keys,
        })
    }

    /// CLUSTER INFO, then a PING to every master, through the same connection as the cache.
    pub async fn health(&self) -> Result<Option<String>, ApiError> {
        let info = self.cluster_info_map("health").await?;
        self.run("health", |mut conn| async move {
            conn.route_command(
                &redis::cmd("PING"),
                RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::AllSucceeded),
                )),
            )
            .await
            .map(|_| ())
        })
        .await?;
        let state = info
            .get("cluster_state")
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        Ok((state != "ok").then(|| format!("cluster state is {state}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:6391@16391 master - 0 1426238317239 2 connected 5461-10922
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:6390@16390 myself,master - 0 0 1 connected 0-5460
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:6392@16392 master - 0 1426238316232 3 connected 10923-16383 [93->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
";

    #[test]
    fn cluster_nodes_parse_and_cover_every_slot() {
        let nodes = parse_cluster_nodes(NODES);
        assert_eq!(
            nodes.iter().map(|n| n.address.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:6390", "127.0.0.1:6391", "127.0.0.1:6392"]
        );
        assert!(nodes
            .iter()
            .all(|n| n.role == "master" && n.connected && n.master_id.is_none()));
        let slots = slots_of(&nodes);
        assert_eq!(slots.coverage.slots_assigned, 16384);
        assert!(slots.coverage.all_covered);
        assert_eq!(slots.ranges[0].master, "127.0.0.1:6390");
    }

    #[test]
    fn info_lines_parse() {
        let info = parse_info("# Server\r\nredis_version:7.0.15\r\nrole:master\r\n");
        assert_eq!(
            info.get("redis_version").map(String::as_str),
            Some("7.0.15")
        );
        assert_eq!(number(&info, "missing"), 0);
    }
}
