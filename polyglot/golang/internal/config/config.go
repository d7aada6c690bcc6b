// Package config reads the service's settings from DEVSTACK_* variables, with the same names,
// defaults and checks as the Python library (docs/client.md) and web layer. Load takes a getenv
// function, so tests give a map and the program its environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Implementation is the name this service reports (ServiceInfo.implementation).
const Implementation = "golang"

// Dependencies are the services whose application secret is read, in the contract's order.
var Dependencies = []string{"postgres", "mysql", "mongodb", "redis", "rabbitmq"}

// DefaultPorts are the stack's base ports (stack/services.toml), before the offset.
var DefaultPorts = map[string]int{
	"vault": 8200, "postgres": 5432, "pgbouncer": 6432, "mysql": 3306, "mongodb": 27017,
	"redis": 6379, "redis_tls": 6390, "rabbitmq": 5672, "rabbitmq_tls": 5671,
}

// Endpoint is a dependency's address.
type Endpoint struct {
	Host string
	Port int
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// Config is everything the service needs, validated.
type Config struct {
	Host       string
	PortOffset int

	VaultAddr          string
	RoleID, SecretID   string // values given directly (rare); files are preferred
	RoleIDFile         string
	SecretIDFile       string
	KVMount, PKIMount  string
	VaultTimeout       time.Duration
	VaultStartTimeout  time.Duration
	TokenRenewFraction float64
	BackoffInitial     time.Duration
	BackoffMax         time.Duration
	SecretTTL          time.Duration
	CAFile             string

	endpoints map[string]Endpoint // per dependency, the TLS port for redis and rabbitmq

	ConnectTimeout   time.Duration
	OperationTimeout time.Duration
	HealthTimeout    time.Duration
	PoolMaxSize      int
	ChannelPoolSize  int
	CacheKeyPrefix   string

	// The web layer (DEVSTACK_API_*).
	APIHost           string
	HTTPPort          int
	HTTPSPort         int
	TLSCertFile       string
	TLSKeyFile        string
	CORSOrigins       []string
	RateLimit         int
	RateWindowSeconds int
	BodyLimit         int64
	LogLevel          string
}

// Endpoint of a dependency (postgres, mysql, mongodb, redis, rabbitmq); redis and rabbitmq
// are their TLS ports.
func (c Config) Endpoint(dependency string) Endpoint { return c.endpoints[dependency] }

// TLSEnabled reports whether the API serves HTTPS too.
func (c Config) TLSEnabled() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }

// ReadRoleID reads the role-id (the file each time, so a replaced file is picked up).
func (c Config) ReadRoleID() (string, error) { return credential(c.RoleID, c.RoleIDFile, "role-id") }

// ReadSecretID reads the secret-id, at each login.
func (c Config) ReadSecretID() (string, error) {
	return credential(c.SecretID, c.SecretIDFile, "secret-id")
}

func credential(value, file, name string) (string, error) {
	if value != "" {
		return strings.TrimSpace(value), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cannot read the AppRole %s file %s: %w", name, file, errors.Unwrap(err))
	}
	text := strings.TrimSpace(string(data))
	if text == "" {
		return "", fmt.Errorf("the AppRole %s file %s is empty", name, file)
	}
	return text, nil
}

var origin = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv("DEVSTACK_" + name)); v != "" {
		return v
	}
	return def
}

func (r *reader) integer(name string, def, lo, hi int) int {
	raw := r.str(name, "")
	if raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < lo || v > hi {
		r.errs = append(r.errs, fmt.Errorf("DEVSTACK_%s must be an integer from %d to %d", name, lo, hi))
		return def
	}
	return v
}

func (r *reader) seconds(name string, def float64, lo, hi float64) time.Duration {
	raw := r.str(name, "")
	v := def
	if raw != "" {
		parsed, err := strconv.ParseFloat(raw, 64)
		if err != nil || parsed <= lo || parsed > hi {
			r.errs = append(r.errs, fmt.Errorf("DEVSTACK_%s must be a number of seconds above %g, at most %g", name, lo, hi))
		} else {
			v = parsed
		}
	}
	return time.Duration(v * float64(time.Second))
}

func (r *reader) boolean(name string) bool {
	switch strings.ToLower(r.str(name, "")) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Load reads and checks every setting; the error lists every problem found.
func Load(getenv func(string) string) (Config, error) {
	r := &reader{getenv: getenv}
	c := Config{
		Host:       r.str("HOST", "127.0.0.1"),
		PortOffset: r.integer("PORT_OFFSET", 0, 0, 20000),
		KVMount:    r.str("VAULT_KV_MOUNT", "secret"),
		PKIMount:   r.str("VAULT_PKI_MOUNT", "pki_int"),
	}
	c.VaultTimeout = r.seconds("VAULT_TIMEOUT", 5, 0, 120)
	c.VaultStartTimeout = r.seconds("VAULT_START_TIMEOUT", 30, -1, 3600)
	c.BackoffInitial = r.seconds("BACKOFF_INITIAL", 0.5, 0, 60)
	c.BackoffMax = r.seconds("BACKOFF_MAX", 30, 0, 600)
	c.SecretTTL = r.seconds("SECRET_TTL", 300, 0, 1e9)
	c.ConnectTimeout = r.seconds("CONNECT_TIMEOUT", 3, 0, 120)
	c.OperationTimeout = r.seconds("OPERATION_TIMEOUT", 5, 0, 600)
	c.HealthTimeout = r.seconds("HEALTH_TIMEOUT", 2, 0, 60)
	c.PoolMaxSize = r.integer("POOL_MAX_SIZE", 4, 1, 1000)
	c.ChannelPoolSize = r.integer("CHANNEL_POOL_SIZE", 8, 1, 1000)
	c.CacheKeyPrefix = r.str("CACHE_KEY_PREFIX", "cache:")
	c.TokenRenewFraction = 2.0 / 3.0
	if raw := r.str("TOKEN_RENEW_FRACTION", ""); raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || f <= 0.1 || f >= 0.95 {
			r.errs = append(r.errs, errors.New("DEVSTACK_TOKEN_RENEW_FRACTION must be above 0.1 and below 0.95"))
		} else {
			c.TokenRenewFraction = f
		}
	}
	if c.BackoffInitial > c.BackoffMax {
		r.errs = append(r.errs, errors.New("DEVSTACK_BACKOFF_INITIAL is larger than DEVSTACK_BACKOFF_MAX"))
	}

	// Vault and its AppRole.
	c.VaultAddr = strings.TrimRight(r.str("VAULT_ADDR", fmt.Sprintf("http://%s:%d", c.Host, DefaultPorts["vault"]+c.PortOffset)), "/")
	if u, err := url.Parse(c.VaultAddr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		r.errs = append(r.errs, fmt.Errorf("DEVSTACK_VAULT_ADDR is not an http(s) URL: %q", c.VaultAddr))
	} else if u.Scheme == "http" && !isLoopback(u.Hostname()) && !r.boolean("VAULT_ALLOW_INSECURE_HTTP") {
		r.errs = append(r.errs, errors.New("DEVSTACK_VAULT_ADDR is plain HTTP to a host that is not loopback: tokens would cross the network in clear (use https, or set DEVSTACK_VAULT_ALLOW_INSECURE_HTTP)"))
	}
	if r.str("VAULT_TOKEN", "") != "" {
		r.errs = append(r.errs, errors.New("DEVSTACK_VAULT_TOKEN is not accepted by this service: configure an AppRole (a root-token fallback does not exist)"))
	}
	stateDir, approle := r.str("STATE_DIR", ""), r.str("APPROLE", "")
	c.RoleID, c.SecretID = r.str("VAULT_ROLE_ID", ""), r.str("VAULT_SECRET_ID", "")
	c.RoleIDFile, c.SecretIDFile = r.str("VAULT_ROLE_ID_FILE", ""), r.str("VAULT_SECRET_ID_FILE", "")
	if stateDir != "" && approle != "" {
		if c.RoleIDFile == "" {
			c.RoleIDFile = filepath.Join(stateDir, "approle", approle, "role-id")
		}
		if c.SecretIDFile == "" {
			c.SecretIDFile = filepath.Join(stateDir, "approle", approle, "secret-id")
		}
	}
	if (c.RoleID == "" && c.RoleIDFile == "") || (c.SecretID == "" && c.SecretIDFile == "") {
		r.errs = append(r.errs, errors.New("no Vault credentials: set DEVSTACK_VAULT_ROLE_ID_FILE and DEVSTACK_VAULT_SECRET_ID_FILE (or DEVSTACK_STATE_DIR with DEVSTACK_APPROLE)"))
	}
	c.CAFile = r.str("CA_FILE", "")
	if c.CAFile == "" && stateDir != "" {
		c.CAFile = filepath.Join(stateDir, "ca", "ca-chain.pem")
	}

	// Dependencies: an unset port is the stack's default plus the offset.
	c.endpoints = map[string]Endpoint{}
	for _, dep := range Dependencies {
		portName := dep
		if dep == "redis" || dep == "rabbitmq" {
			portName = dep + "_tls"
		}
		up := strings.ToUpper(portName)
		port := r.integer(up+"_PORT", DefaultPorts[portName]+c.PortOffset, 1, 65535)
		c.endpoints[dep] = Endpoint{Host: r.str(strings.ToUpper(dep)+"_HOST", c.Host), Port: port}
	}

	// The web layer.
	c.APIHost = r.str("API_HOST", "127.0.0.1")
	c.HTTPPort = r.integer("API_HTTP_PORT", 8002, 1, 65535)
	c.HTTPSPort = r.integer("API_HTTPS_PORT", 8445, 1, 65535)
	c.TLSCertFile, c.TLSKeyFile = r.str("API_TLS_CERT_FILE", ""), r.str("API_TLS_KEY_FILE", "")
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		r.errs = append(r.errs, errors.New("set both DEVSTACK_API_TLS_CERT_FILE and DEVSTACK_API_TLS_KEY_FILE"))
	}
	if c.HTTPPort == c.HTTPSPort {
		r.errs = append(r.errs, errors.New("DEVSTACK_API_HTTP_PORT and DEVSTACK_API_HTTPS_PORT must differ"))
	}
	c.RateLimit = r.integer("API_RATE_LIMIT", 0, 0, 1<<30)
	c.RateWindowSeconds = r.integer("API_RATE_WINDOW_SECONDS", 60, 1, 86400)
	c.BodyLimit = int64(r.integer("API_BODY_LIMIT", 1<<20, 1, 64<<20))
	c.LogLevel = strings.ToUpper(r.str("API_LOG_LEVEL", "INFO"))
	switch c.LogLevel {
	case "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL":
	default:
		r.errs = append(r.errs, errors.New("DEVSTACK_API_LOG_LEVEL is one of DEBUG, INFO, WARNING, ERROR, CRITICAL"))
	}
	c.CORSOrigins = splitOrigins(r.str("API_CORS_ORIGINS", ""))
	for _, o := range c.CORSOrigins {
		if o != "*" && !origin.MatchString(o) {
			r.errs = append(r.errs, fmt.Errorf("DEVSTACK_API_CORS_ORIGINS: %q is not an origin: use scheme://host[:port] (no path), or *", o))
		}
	}
	return c, errors.Join(r.errs...)
}

func splitOrigins(raw string) []string {
	raw = strings.TrimSpace(raw)
	if strings.HasPrefix(raw, "[") { // a JSON list, as the Python settings accept
		raw = strings.Trim(raw, "[]")
	}
	var out []string
	for _, part := range strings.Split(raw, ",") {
		part = strings.Trim(strings.TrimSpace(part), `"`)
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
