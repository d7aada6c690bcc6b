package stores

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/vault"
)

// Page sizes of the item lists.
const (
	DefaultPage = 20
	MaxPage     = 100
)

// Items is the item collection of one database.
type Items interface {
	Backend() string
	Query(ctx context.Context) (QueryResult, error)
	Create(ctx context.Context, in ItemCreate) (Item, error)
	Get(ctx context.Context, id string) (Item, error)
	List(ctx context.Context, limit int) (ItemList, error)
	Delete(ctx context.Context, id string) error
	Probe(ctx context.Context) error
}

func notFound(backend string) error { return apperr.NotFound("no %s item has this id", backend) }

// CanonicalUUID is the canonical form of a UUID as Python's uuid.UUID reads one (braces, urn
// prefix and hyphens allowed, 32 hex digits); ok false for anything else.
func CanonicalUUID(id string) (string, bool) {
	hex := strings.ReplaceAll(strings.ReplaceAll(id, "urn:", ""), "uuid:", "")
	hex = strings.ReplaceAll(strings.Trim(hex, "{}"), "-", "")
	if len(hex) != 32 {
		return "", false
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return "", false
		}
	}
	hex = strings.ToLower(hex)
	return hex[0:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:], true
}

// schemaOnce creates a table once per process (idempotent DDL), retried after a failure.
type schemaOnce struct {
	mu    sync.Mutex
	ready bool
}

func (s *schemaOnce) ensure(ctx context.Context, create func(context.Context) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	if err := create(ctx); err != nil {
		return err
	}
	s.ready = true
	return nil
}

// -- PostgreSQL ------------------------------------------------------------------------------

// NewPostgresPool is a pgxpool, TLS verified against the stack's CA.
func NewPostgresPool(cfg config.Config, store *secrets.Store, trust *Trust, log *slog.Logger) *Pool[*pgxpool.Pool] {
	ep := cfg.Endpoint("postgres")
	return NewPool(Driver[*pgxpool.Pool]{
		Name: "postgres",
		Build: func(ctx context.Context, s *vault.Secret) (*pgxpool.Pool, error) {
			pc, err := pgxpool.ParseConfig("")
			if err != nil {
				return nil, err
			}
			cc := pc.ConnConfig
			cc.Host, cc.Port = ep.Host, uint16(ep.Port)
			cc.User, cc.Password, cc.Database = str(s, "user"), str(s, "password"), str(s, "database")
			cc.TLSConfig = nil
			if TLSEnabled(s) {
				cc.TLSConfig = trust.Config(ep.Host)
			}
			cc.Fallbacks = nil
			cc.ConnectTimeout = cfg.ConnectTimeout
			cc.RuntimeParams = map[string]string{"application_name": "devstack_golang"}
			pc.MaxConns, pc.MinConns = int32(cfg.PoolMaxSize), 0
			pc.MaxConnIdleTime = 300 * time.Second
			pc.HealthCheckPeriod = time.Minute
			return pgxpool.NewWithConfig(ctx, pc)
		},
		Close: func(p *pgxpool.Pool) { p.Close() },
		IsAuthError: func(err error) bool {
			var pg *pgconn.PgError
			return errors.As(err, &pg) && strings.HasPrefix(pg.Code, "28")
		},
		IsDataError: func(err error) bool {
			var pg *pgconn.PgError
			return errors.As(err, &pg) && strings.HasPrefix(pg.Code, "22")
		},
		Target: func(*vault.Secret) string { return ep.Addr() },
		OnError: func(p *pgxpool.Pool, err error) {
			var pg *pgconn.PgError
			if !errors.As(err, &pg) {
				p.Reset() // idle connections to a restarted server are dead: replace them
			}
		},
	}, cfg, store, log)
}

// PostgresItems are the items in PostgreSQL.
type PostgresItems struct {
	pool   *Pool[*pgxpool.Pool]
	schema schemaOnce
}

// NewPostgresItems wraps the pool.
func NewPostgresItems(pool *Pool[*pgxpool.Pool]) *PostgresItems { return &PostgresItems{pool: pool} }

// Backend implements Items.
func (r *PostgresItems) Backend() string { return "postgres" }

func (r *PostgresItems) ensure(ctx context.Context) error {
	return r.schema.ensure(ctx, func(ctx context.Context) error {
		_, err := Run(ctx, r.pool, "create table", func(ctx context.Context, p *pgxpool.Pool) (struct{}, error) {
			_, err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS items (id uuid PRIMARY KEY, "+
				"name varchar(100) NOT NULL, quantity integer NOT NULL DEFAULT 0, "+
				"created_at timestamptz NOT NULL)")
			var pg *pgconn.PgError
			if errors.As(err, &pg) && (pg.Code == "23505" || pg.Code == "42P07") {
				err = nil // another process created it at the same moment
			}
			return struct{}{}, err
		})
		return err
	})
}

// Probe implements Items.
func (r *PostgresItems) Probe(ctx context.Context) error {
	_, err := Run(ctx, r.pool, "health", func(ctx context.Context, p *pgxpool.Pool) (int, error) {
		var one int
		return one, p.QueryRow(ctx, "SELECT 1").Scan(&one)
	})
	return err
}

// Query implements Items.
func (r *PostgresItems) Query(ctx context.Context) (QueryResult, error) {
	return Run(ctx, r.pool, "query", func(ctx context.Context, p *pgxpool.Pool) (QueryResult, error) {
		var version string
		var now time.Time
		err := p.QueryRow(ctx, "SELECT current_setting('server_version') AS version, now() AS time").Scan(&version, &now)
		return QueryResult{Database: "postgres", ServerVersion: version, ServerTime: FormatTime(now)}, err
	})
}

func scanPostgres(row pgx.Row) (Item, error) {
	var it Item
	var created time.Time
	var quantity int32
	err := row.Scan(&it.ID, &it.Name, &quantity, &created)
	it.Quantity, it.CreatedAt = int64(quantity), Timestamp(created)
	return it, err
}

const pgColumns = "id::text, name, quantity, created_at"

// Create implements Items.
func (r *PostgresItems) Create(ctx context.Context, in ItemCreate) (Item, error) {
	if err := r.ensure(ctx); err != nil {
		return Item{}, err
	}
	return Run(ctx, r.pool, "create item", func(ctx context.Context, p *pgxpool.Pool) (Item, error) {
		return scanPostgres(p.QueryRow(ctx, "INSERT INTO items (id, name, quantity, created_at) "+
			"VALUES ($1::uuid, $2, $3, $4) RETURNING "+pgColumns, newUUID(), in.Name, int32(in.Quantity), Now()))
	})
}

// Get implements Items.
func (r *PostgresItems) Get(ctx context.Context, id string) (Item, error) {
	key, ok := CanonicalUUID(id)
	if !ok {
		return Item{}, notFound(r.Backend())
	}
	if err := r.ensure(ctx); err != nil {
		return Item{}, err
	}
	return Run(ctx, r.pool, "get item", func(ctx context.Context, p *pgxpool.Pool) (Item, error) {
		it, err := scanPostgres(p.QueryRow(ctx, "SELECT "+pgColumns+" FROM items WHERE id = $1::uuid", key))
		if errors.Is(err, pgx.ErrNoRows) {
			return it, notFound(r.Backend())
		}
		return it, err
	})
}

// List implements Items.
func (r *PostgresItems) List(ctx context.Context, limit int) (ItemList, error) {
	if err := r.ensure(ctx); err != nil {
		return ItemList{}, err
	}
	return Run(ctx, r.pool, "list items", func(ctx context.Context, p *pgxpool.Pool) (ItemList, error) {
		rows, err := p.Query(ctx, "SELECT "+pgColumns+" FROM items ORDER BY created_at DESC, id DESC LIMIT $1", limit)
		if err != nil {
			return ItemList{}, err
		}
		defer rows.Close()
		list := ItemList{Items: []Item{}}
		for rows.Next() {
			it, err := scanPostgres(rows)
			if err != nil {
				return ItemList{}, err
			}
			list.Items = append(list.Items, it)
		}
		return list, rows.Err()
	})
}

// Delete implements Items.
func (r *PostgresItems) Delete(ctx context.Context, id string) error {
	key, ok := CanonicalUUID(id)
	if !ok {
		return notFound(r.Backend())
	}
	if err := r.ensure(ctx); err != nil {
		return err
	}
	_, err := Run(ctx, r.pool, "delete item", func(ctx context.Context, p *pgxpool.Pool) (struct{}, error) {
		tag, err := p.Exec(ctx, "DELETE FROM items WHERE id = $1::uuid", key)
		if err == nil && tag.RowsAffected() == 0 {
			err = notFound(r.Backend())
		}
		return struct{}{}, err
	})
	return err
}

// -- MySQL (MariaDB) -------------------------------------------------------------------------

// NewMySQLPool is a database/sql pool over go-sql-driver/mysql, TLS verified.
func NewMySQLPool(cfg config.Config, store *secrets.Store, trust *Trust, log *slog.Logger) *Pool[*sql.DB] {
	ep := cfg.Endpoint("mysql")
	return NewPool(Driver[*sql.DB]{
		Name: "mysql",
		Build: func(_ context.Context, s *vault.Secret) (*sql.DB, error) {
			mc := mysql.NewConfig()
			mc.User, mc.Passwd, mc.DBName = str(s, "user"), str(s, "password"), str(s, "database")
			mc.Net, mc.Addr = "tcp", ep.Addr()
			if TLSEnabled(s) {
				mc.TLS = trust.Config(ep.Host)
			}
			mc.Timeout = cfg.ConnectTimeout
			mc.ReadTimeout, mc.WriteTimeout = cfg.OperationTimeout, cfg.OperationTimeout
			mc.ParseTime, mc.Loc = true, time.UTC
			mc.Collation = "utf8mb4_unicode_ci"
			connector, err := mysql.NewConnector(mc)
			if err != nil {
				return nil, err
			}
			db := sql.OpenDB(connector)
			db.SetMaxOpenConns(cfg.PoolMaxSize)
			db.SetMaxIdleConns(cfg.PoolMaxSize)
			db.SetConnMaxIdleTime(300 * time.Second)
			return db, nil
		},
		Close:  func(db *sql.DB) { _ = db.Close() },
		Target: func(*vault.Secret) string { return ep.Addr() },
		IsAuthError: func(err error) bool {
			var me *mysql.MySQLError
			return errors.As(err, &me) && me.Number == 1045
		},
		IsDataError: func(err error) bool {
			var me *mysql.MySQLError
			if !errors.As(err, &me) {
				return false
			}
			switch me.Number {
			case 1264, 1265, 1292, 1366, 1406:
				return true
			}
			return false
		},
	}, cfg, store, log)
}

// MySQLItems are the items in MariaDB.
type MySQLItems struct {
	pool   *Pool[*sql.DB]
	schema schemaOnce
}

// NewMySQLItems wraps the pool.
func NewMySQLItems(pool *Pool[*sql.DB]) *MySQLItems { return &MySQLItems{pool: pool} }

// Backend implements Items.
func (r *MySQLItems) Backend() string { return "mysql" }

func (r *MySQLItems) ensure(ctx context.Context) error {
	return r.schema.ensure(ctx, func(ctx context.Context) error {
		_, err := Run(ctx, r.pool, "create table", func(ctx context.Context, db *sql.DB) (sql.Result, error) {
			// Microseconds: two inserts can land in the same millisecond (see the Python app).
			return db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS items (id CHAR(36) PRIMARY KEY, "+
				"name VARCHAR(100) NOT NULL, quantity INT UNSIGNED NOT NULL DEFAULT 0, "+
				"created_at DATETIME(6) NOT NULL, KEY by_created (created_at, id)) CHARACTER SET utf8mb4")
		})
		return err
	})
}

// Probe implements Items.
func (r *MySQLItems) Probe(ctx context.Context) error {
	_, err := Run(ctx, r.pool, "health", func(ctx context.Context, db *sql.DB) (int, error) {
		var one int
		return one, db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	})
	return err
}

// Query implements Items.
func (r *MySQLItems) Query(ctx context.Context) (QueryResult, error) {
	return Run(ctx, r.pool, "query", func(ctx context.Context, db *sql.DB) (QueryResult, error) {
		var version string
		var now time.Time
		err := db.QueryRowContext(ctx, "SELECT VERSION(), UTC_TIMESTAMP(3)").Scan(&version, &now)
		return QueryResult{Database: "mysql", ServerVersion: version, ServerTime: FormatTime(now)}, err
	})
}

func scanMySQL(scan func(...any) error) (Item, error) {
	var it Item
	var created time.Time
	err := scan(&it.ID, &it.Name, &it.Quantity, &created)
	it.CreatedAt = Timestamp(created)
	return it, err
}

// Create implements Items.
func (r *MySQLItems) Create(ctx context.Context, in ItemCreate) (Item, error) {
	if err := r.ensure(ctx); err != nil {
		return Item{}, err
	}
	it := Item{ID: newUUID(), Name: in.Name, Quantity: in.Quantity, CreatedAt: Timestamp(Now())}
	_, err := Run(ctx, r.pool, "create item", func(ctx context.Context, db *sql.DB) (sql.Result, error) {
		return db.ExecContext(ctx, "INSERT INTO items (id, name, quantity, created_at) VALUES (?, ?, ?, ?)",
			it.ID, it.Name, it.Quantity, time.Time(it.CreatedAt))
	})
	return it, err
}

// Get implements Items.
func (r *MySQLItems) Get(ctx context.Context, id string) (Item, error) {
	key, ok := CanonicalUUID(id)
	if !ok {
		return Item{}, notFound(r.Backend())
	}
	if err := r.ensure(ctx); err != nil {
		return Item{}, err
	}
	return Run(ctx, r.pool, "get item", func(ctx context.Context, db *sql.DB) (Item, error) {
		it, err := scanMySQL(db.QueryRowContext(ctx, "SELECT id, name, quantity, created_at FROM items WHERE id = ?", key).Scan)
		if errors.Is(err, sql.ErrNoRows) {
			return it, notFound(r.Backend())
		}
		return it, err
	})
}

// List implements Items.
func (r *MySQLItems) List(ctx context.Context, limit int) (ItemList, error) {
	if err := r.ensure(ctx); err != nil {
		return ItemList{}, err
	}
	return Run(ctx, r.pool, "list items", func(ctx context.Context, db *sql.DB) (ItemList, error) {
		rows, err := db.QueryContext(ctx, "SELECT id, name, quantity, created_at FROM items "+
			"ORDER BY created_at DESC, id DESC LIMIT ?", limit)
		if err != nil {
			return ItemList{}, err
		}
		defer rows.Close()
		list := ItemList{Items: []Item{}}
		for rows.Next() {
			it, err := scanMySQL(rows.Scan)
			if err != nil {
				return ItemList{}, err
			}
			list.Items = append(list.Items, it)
		}
		return list, rows.Err()
	})
}

// Delete implements Items.
func (r *MySQLItems) Delete(ctx context.Context, id string) error {
	key, ok := CanonicalUUID(id)
	if !ok {
		return notFound(r.Backend())
	}
	if err := r.ensure(ctx); err != nil {
		return err
	}
	_, err := Run(ctx, r.pool, "delete item", func(ctx context.Context, db *sql.DB) (struct{}, error) {
		res, err := db.ExecContext(ctx, "DELETE FROM items WHERE id = ?", key)
		if err != nil {
			return struct{}{}, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return struct{}{}, notFound(r.Backend())
		}
		return struct{}{}, nil
	})
	return err
}

// -- MongoDB protocol --------------------------------------------------------------------------

// MongoHandle is a client and its database.
type MongoHandle struct {
	Client   *mongo.Client
	Database *mongo.Database
	// unreachable: the driver's last heartbeat to the server failed. An operation then waits
	// for server selection until its deadline; that timeout is an outage, not a slow server.
	unreachable atomic.Bool
}

// heartbeats is a monitor keeping h.unreachable (one server: the connection is direct).
func (h *MongoHandle) heartbeats() *event.ServerMonitor {
	return &event.ServerMonitor{
		ServerHeartbeatSucceeded: func(*event.ServerHeartbeatSucceededEvent) { h.unreachable.Store(false) },
		ServerHeartbeatFailed:    func(*event.ServerHeartbeatFailedEvent) { h.unreachable.Store(true) },
	}
}

// NewMongoPool is one mongo.Client (it pools connections itself), TLS verified.
func NewMongoPool(cfg config.Config, store *secrets.Store, trust *Trust, log *slog.Logger) *Pool[*MongoHandle] {
	ep := cfg.Endpoint("mongodb")
	return NewPool(Driver[*MongoHandle]{
		Name: "mongodb",
		Build: func(_ context.Context, s *vault.Secret) (*MongoHandle, error) {
			opts := options.Client().
				SetHosts([]string{ep.Addr()}).
				SetDirect(true).
				SetAuth(options.Credential{Username: str(s, "user"), Password: str(s, "password"), AuthSource: str(s, "database")}).
				SetServerSelectionTimeout(cfg.ConnectTimeout).
				SetConnectTimeout(cfg.ConnectTimeout).
				SetMaxPoolSize(uint64(cfg.PoolMaxSize)).
				SetMinPoolSize(0).
				SetAppName("devstack_golang")
			if TLSEnabled(s) {
				opts.SetTLSConfig(trust.Config(ep.Host))
			}
			h := &MongoHandle{}
			opts.SetServerMonitor(h.heartbeats())
			client, err := mongo.Connect(opts)
			if err != nil {
				return nil, err
			}
			h.Client, h.Database = client, client.Database(str(s, "database"))
			return h, nil
		},
		Target:           func(*vault.Secret) string { return ep.Addr() },
		KnownUnreachable: func(h *MongoHandle) bool { return h.unreachable.Load() },
		Close: func(h *MongoHandle) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = h.Client.Disconnect(ctx)
		},
		IsAuthError: func(err error) bool {
			var ce mongo.CommandError
			return errors.As(err, &ce) && ce.Code == 18
		},
	}, cfg, store, log)
}

// MongoItems are the items in the collection items.
type MongoItems struct{ pool *Pool[*MongoHandle] }

// NewMongoItems wraps the pool.
func NewMongoItems(pool *Pool[*MongoHandle]) *MongoItems { return &MongoItems{pool: pool} }

// Backend implements Items.
func (r *MongoItems) Backend() string { return "mongodb" }

func objectID(id string) (bson.ObjectID, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil || len(id) != 24 {
		return oid, notFound("mongodb")
	}
	return oid, nil
}

// Probe implements Items.
func (r *MongoItems) Probe(ctx context.Context) error {
	_, err := Run(ctx, r.pool, "health", func(ctx context.Context, h *MongoHandle) (struct{}, error) {
		return struct{}{}, h.Database.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
	})
	return err
}

// Query implements Items.
func (r *MongoItems) Query(ctx context.Context) (QueryResult, error) {
	return Run(ctx, r.pool, "query", func(ctx context.Context, h *MongoHandle) (QueryResult, error) {
		var build struct {
			Version string `bson:"version"`
		}
		if err := h.Database.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&build); err != nil {
			return QueryResult{}, err
		}
		var hello struct {
			LocalTime time.Time `bson:"localTime"`
		}
		if err := h.Client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
			return QueryResult{}, err
		}
		now := hello.LocalTime
		if now.IsZero() {
			now = Now()
		}
		return QueryResult{Database: "mongodb", ServerVersion: build.Version, ServerTime: FormatTime(now)}, nil
	})
}

type mongoDoc struct {
	ID        bson.RawValue `bson:"_id"`
	Name      string        `bson:"name"`
	Quantity  int64         `bson:"quantity"`
	CreatedAt time.Time     `bson:"created_at"`
}

func (d mongoDoc) item() Item {
	id := d.ID.String()
	if oid, ok := d.ID.ObjectIDOK(); ok {
		id = oid.Hex()
	} else if s, ok := d.ID.StringValueOK(); ok {
		id = s
	}
	return Item{ID: id, Name: d.Name, Quantity: d.Quantity, CreatedAt: Timestamp(d.CreatedAt)}
}

// Create implements Items.
func (r *MongoItems) Create(ctx context.Context, in ItemCreate) (Item, error) {
	oid, created := bson.NewObjectID(), Now()
	_, err := Run(ctx, r.pool, "create item", func(ctx context.Context, h *MongoHandle) (struct{}, error) {
		_, err := h.Database.Collection("items").InsertOne(ctx, bson.D{
			{Key: "_id", Value: oid}, {Key: "name", Value: in.Name},
			{Key: "quantity", Value: int32(in.Quantity)}, {Key: "created_at", Value: created},
		})
		return struct{}{}, err
	})
	return Item{ID: oid.Hex(), Name: in.Name, Quantity: in.Quantity, CreatedAt: Timestamp(created)}, err
}

// Get implements Items.
func (r *MongoItems) Get(ctx context.Context, id string) (Item, error) {
	oid, err := objectID(id)
	if err != nil {
		return Item{}, err
	}
	return Run(ctx, r.pool, "get item", func(ctx context.Context, h *MongoHandle) (Item, error) {
		var doc mongoDoc
		err := h.Database.Collection("items").FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&doc)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return Item{}, notFound(r.Backend())
		}
		return doc.item(), err
	})
}

// List implements Items.
func (r *MongoItems) List(ctx context.Context, limit int) (ItemList, error) {
	return Run(ctx, r.pool, "list items", func(ctx context.Context, h *MongoHandle) (ItemList, error) {
		opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit))
		cursor, err := h.Database.Collection("items").Find(ctx, bson.D{}, opts)
		if err != nil {
			return ItemList{}, err
		}
		defer cursor.Close(ctx)
		list := ItemList{Items: []Item{}}
		for cursor.Next(ctx) {
			var doc mongoDoc
			if err := cursor.Decode(&doc); err != nil {
				return ItemList{}, err
			}
			list.Items = append(list.Items, doc.item())
		}
		return list, cursor.Err()
	})
}

// Delete implements Items.
func (r *MongoItems) Delete(ctx context.Context, id string) error {
	oid, err := objectID(id)
	if err != nil {
		return err
	}
	_, err = Run(ctx, r.pool, "delete item", func(ctx context.Context, h *MongoHandle) (struct{}, error) {
		res, err := h.Database.Collection("items").DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}})
		if err == nil && res.DeletedCount == 0 {
			err = notFound(r.Backend())
		}
		return struct{}{}, err
	})
	return err
}
