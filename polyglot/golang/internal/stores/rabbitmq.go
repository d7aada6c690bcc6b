package stores

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/config"
	"devstack/polyglot/golang/internal/jsonrules"
	"devstack/polyglot/golang/internal/secrets"
	"devstack/polyglot/golang/internal/vault"
)

// Rabbit is one AMQPS connection and a pool of confirming channels. A dead connection makes
// the pool build a new one at the next operation (Alive), so the service recovers by itself.
type Rabbit struct {
	conn *amqp.Connection
	max  int

	mu   sync.Mutex
	idle []*channel
}

type channel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
}

func (r *Rabbit) acquire() (*channel, error) {
	r.mu.Lock()
	for len(r.idle) > 0 {
		c := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if !c.ch.IsClosed() {
			r.mu.Unlock()
			return c, nil
		}
	}
	r.mu.Unlock()
	ch, err := r.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	c := &channel{ch: ch, returns: make(chan amqp.Return, 4)}
	ch.NotifyReturn(c.returns)
	return c, nil
}

// release gives a channel back; one that failed (a broker error closes it) is dropped.
func (r *Rabbit) release(c *channel, failed bool) {
	if failed || c.ch.IsClosed() {
		_ = c.ch.Close()
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.idle) < r.max {
		r.idle = append(r.idle, c)
		return
	}
	go func() { _ = c.ch.Close() }()
}

// NewRabbitPool connects over AMQPS to the secret's vhost, TLS verified.
func NewRabbitPool(cfg config.Config, store *secrets.Store, trust *Trust, log *slog.Logger) *Pool[*Rabbit] {
	ep, target := cfg.Endpoint("rabbitmq"), plainOrTLS(cfg, "rabbitmq")
	return NewPool(Driver[*Rabbit]{
		Name: "rabbitmq",
		Build: func(_ context.Context, s *vault.Secret) (*Rabbit, error) {
			vhost := str(s, "vhost")
			if vhost == "" {
				vhost = "/"
			}
			conf := amqp.Config{
				SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: str(s, "user"), Password: str(s, "password")}},
				Vhost:      vhost,
				Dial:       amqp.DefaultDial(cfg.ConnectTimeout),
				Properties: amqp.Table{"connection_name": "devstack_golang"},
			}
			scheme := "amqp"
			if TLSEnabled(s) {
				scheme = "amqps"
				conf.TLSClientConfig = trust.Config(ep.Host)
			}
			url := scheme + "://" + target(s) + "/"
			conn, err := amqp.DialConfig(url, conf)
			if err != nil {
				return nil, err
			}
			return &Rabbit{conn: conn, max: cfg.ChannelPoolSize}, nil
		},
		Close:  func(r *Rabbit) { _ = r.conn.Close() },
		Alive:  func(r *Rabbit) bool { return !r.conn.IsClosed() },
		Target: target,
		IsAuthError: func(err error) bool {
			var ae *amqp.Error
			return (errors.As(err, &ae) && ae.Code == amqp.AccessRefused) || strings.Contains(err.Error(), "ACCESS_REFUSED")
		},
	}, cfg, store, log)
}

// withChannel runs fn on a pooled channel, bounded by ctx even where amqp091 cannot be
// (its channel calls wait for the broker's reply without a context).
func withChannel[T any](ctx context.Context, r *Rabbit, fn func(*channel) (T, error)) (T, error) {
	var zero T
	c, err := r.acquire()
	if err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(c)
		r.release(c, err != nil)
		done <- result{v, err}
	}()
	select {
	case res := <-done:
		return res.v, res.err
	case <-ctx.Done():
		r.resetIfStuck(ctx)
		return zero, ctx.Err()
	}
}

// resetIfStuck closes the connection when the operation's time ran out (the broker is stuck:
// start afresh next time). A caller that went away is no sign of that: the connection carries
// every other request's operations, so it stays, and the abandoned one finishes by itself.
func (r *Rabbit) resetIfStuck(ctx context.Context) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		go func() { _ = r.conn.Close() }()
	}
}

// -- the use cases ---------------------------------------------------------------------------

var queueName = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,200}$`)

// Consume bounds.
const (
	MaxConsume     = 100
	DefaultConsume = 10
)

// ValidQueueName is the contract's rule for a queue name.
func ValidQueueName(name string) bool {
	return queueName.MatchString(name) && name != "." && name != ".." && !strings.HasPrefix(name, "amq.")
}

func checkQueue(name string) error {
	if !ValidQueueName(name) {
		return apperr.Invalid(nil, "a queue name is 1-200 of A-Z a-z 0-9 . _ - (not amq.*, . or ..)")
	}
	return nil
}

func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// Queues publishes JSON objects (confirmed; unroutable is NotFound), consumes, inspects.
type Queues struct {
	pool *Pool[*Rabbit]
	log  *slog.Logger
}

// NewQueues wraps the pool.
func NewQueues(pool *Pool[*Rabbit], log *slog.Logger) *Queues { return &Queues{pool: pool, log: log} }

// Probe is the health check: a round trip in the vhost on a pooled channel.
func (q *Queues) Probe(ctx context.Context) error {
	_, err := Run(ctx, q.pool, "health", func(ctx context.Context, r *Rabbit) (struct{}, error) {
		return withChannel(ctx, r, func(c *channel) (struct{}, error) {
			return struct{}{}, c.ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil)
		})
	})
	return err
}

// Publish declares queue (durable), publishes payload (a JSON object) persistent with a new
// message_id, and returns once the broker confirmed it.
func (q *Queues) Publish(ctx context.Context, queue string, payload []byte) (PublishResult, error) {
	if err := checkQueue(queue); err != nil {
		return PublishResult{}, err
	}
	var body bytes.Buffer
	if err := json.Compact(&body, payload); err != nil {
		return PublishResult{}, apperr.Invalid(err, "the message is not JSON")
	}
	id := NewUUID()
	return Run(ctx, q.pool, "publish", func(ctx context.Context, r *Rabbit) (PublishResult, error) {
		return withChannel(ctx, r, func(c *channel) (PublishResult, error) {
			for len(c.returns) > 0 {
				<-c.returns
			}
			if _, err := c.ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
				return PublishResult{}, err
			}
			confirm, err := c.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
				ContentType:  "application/json",
				DeliveryMode: amqp.Persistent,
				MessageId:    id,
				Body:         body.Bytes(),
			})
			if err != nil {
				return PublishResult{}, err
			}
			acked, err := confirm.WaitContext(ctx)
			if err != nil {
				return PublishResult{}, err
			}
			if !acked {
				return PublishResult{}, apperr.Unavailable("rabbitmq", "the broker refused the message", nil)
			}
			select { // a return comes before the confirm of the same message
			case ret := <-c.returns:
				if ret.MessageId == id {
					return PublishResult{}, apperr.NotFound("no queue %s received the message", apperr.Repr(queue))
				}
			default:
			}
			return PublishResult{Queue: queue, MessageID: id}, nil
		})
	})
}

// IsJSONObject reports whether body is a JSON object in UTF-8 that obeys the contract's
// "values past the syntax" (a message breaking them cannot be given to a client).
func IsJSONObject(body []byte) bool {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || jsonrules.TooDeep(trimmed) || !utf8.Valid(trimmed) || !json.Valid(trimmed) {
		return false
	}
	_, breaksARule := jsonrules.First(trimmed)
	return !breaksARule
}

// Settle ends a consume: true once the answer carrying the messages was written (one
// multiple ack), false to give them back to the queue at once (nack, requeue).
type Settle func(delivered bool)

// Consume takes up to max messages waiting now, without acknowledging them: the caller
// settles them once its answer is written, so a message is never lost between the broker and
// the client. A body that is not a JSON object obeying the contract's rules is rejected
// without requeue at once and counted.
func (q *Queues) Consume(ctx context.Context, queue string, maxMessages int) (ConsumeResult, Settle, error) {
	noop := func(bool) {}
	if err := checkQueue(queue); err != nil {
		return ConsumeResult{}, noop, err
	}
	if maxMessages < 1 || maxMessages > MaxConsume {
		return ConsumeResult{}, noop, apperr.Invalid(nil, "max must be between 1 and %d", MaxConsume)
	}
	type taken struct {
		result ConsumeResult
		settle Settle
	}
	got, err := Run(ctx, q.pool, "consume", func(ctx context.Context, r *Rabbit) (taken, error) {
		c, err := r.acquire()
		if err != nil {
			return taken{}, err
		}
		type outcome struct {
			result ConsumeResult
			last   uint64
			err    error
		}
		done := make(chan outcome, 1)
		go func() {
			result, last, err := q.take(c, queue, maxMessages)
			done <- outcome{result, last, err}
		}()
		select {
		case <-ctx.Done():
			r.release(c, true) // the channel closes: what it took goes back to the queue
			r.resetIfStuck(ctx)
			return taken{}, ctx.Err()
		case out := <-done:
			if out.err != nil {
				r.release(c, true)
				return taken{}, out.err
			}
			var once sync.Once
			settle := func(delivered bool) {
				once.Do(func() {
					var err error
					if out.last > 0 {
						if delivered {
							err = c.ch.Ack(out.last, true)
						} else {
							err = c.ch.Nack(out.last, true, true)
						}
					}
					r.release(c, err != nil)
				})
			}
			return taken{out.result, settle}, nil
		}
	})
	if err != nil {
		return ConsumeResult{}, noop, err
	}
	return got.result, got.settle, nil
}

// take gets the messages on c; last is the delivery tag to settle (0: none taken).
func (q *Queues) take(c *channel, queue string, maxMessages int) (ConsumeResult, uint64, error) {
	result := ConsumeResult{Queue: queue, Messages: []ConsumedMessage{}}
	var last uint64
	if _, err := c.ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		if isNotFound(err) {
			return result, 0, apperr.NotFound("queue %s does not exist", apperr.Repr(queue))
		}
		return result, 0, err
	}
	for len(result.Messages) < maxMessages {
		msg, ok, err := c.ch.Get(queue, false)
		if err != nil {
			return result, 0, err
		}
		if !ok {
			break
		}
		if !IsJSONObject(msg.Body) {
			if err := msg.Reject(false); err != nil {
				return result, 0, err
			}
			q.log.Warn("message rejected: not a JSON object this API can give", "queue", queue, "message_id", msg.MessageId)
			result.Rejected++
			continue
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, msg.Body)
		var id *string
		if msg.MessageId != "" {
			mid := msg.MessageId
			id = &mid
		}
		result.Messages = append(result.Messages, ConsumedMessage{MessageID: id, Payload: compact.Bytes(), Redelivered: msg.Redelivered})
		last = msg.DeliveryTag
	}
	return result, last, nil
}

// Inspect is a queue's message and consumer counts.
func (q *Queues) Inspect(ctx context.Context, queue string) (QueueInfo, error) {
	if err := checkQueue(queue); err != nil {
		return QueueInfo{}, err
	}
	return Run(ctx, q.pool, "inspect queue", func(ctx context.Context, r *Rabbit) (QueueInfo, error) {
		return withChannel(ctx, r, func(c *channel) (QueueInfo, error) {
			state, err := c.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			if err != nil {
				if isNotFound(err) {
					return QueueInfo{}, apperr.NotFound("queue %s does not exist", apperr.Repr(queue))
				}
				return QueueInfo{}, err
			}
			return QueueInfo{Queue: queue, MessageCount: state.Messages, ConsumerCount: state.Consumers}, nil
		})
	})
}
