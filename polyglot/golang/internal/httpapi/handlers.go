package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/problems"
	"devstack/polyglot/golang/internal/stores"
)

// healthRetryAfter is the Retry-After of a 503 health report.
const healthRetryAfter = "5"

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// send writes a JSON body without HTML escaping, as the Python apps do.
func send(c *gin.Context, status int, v any) {
	body, err := problems.Marshal(v)
	if err != nil {
		panic(err) // our own types always encode; the recovery middleware answers 500
	}
	c.Header("Content-Length", strconv.Itoa(len(body)))
	c.Data(status, "application/json", body)
}

func noContent(c *gin.Context) {
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
}

func (a *api) invalid(c *gin.Context, errs fieldErrors) bool {
	if len(errs) == 0 {
		return false
	}
	a.problem(c, http.StatusUnprocessableEntity, problems.InvalidDetail, "", errs)
	return true
}

// -- service and health ------------------------------------------------------------------------

type serviceLinks struct {
	Self      string `json:"self"`
	Health    string `json:"health"`
	HealthAll string `json:"health_all"`
	Metrics   string `json:"metrics"`
}

type serviceInfo struct {
	Name           string       `json:"name"`
	Implementation string       `json:"implementation"`
	Version        string       `json:"version"`
	Links          serviceLinks `json:"links"`
}

func (a *api) serviceInfo(c *gin.Context) {
	send(c, http.StatusOK, serviceInfo{
		Name: "devstack-core", Implementation: a.Implementation, Version: ContractVersion,
		Links: serviceLinks{Self: "/", Health: "/health", HealthAll: "/health/all", Metrics: "/metrics"},
	})
}

func (a *api) liveness(c *gin.Context) {
	send(c, http.StatusOK, map[string]string{"status": "healthy"})
}

func (a *api) healthReport(c *gin.Context, names []string) {
	report := a.Health.Check(c.Request.Context(), names)
	if report.HTTPStatus() != http.StatusOK {
		c.Header("Retry-After", healthRetryAfter)
	}
	send(c, report.HTTPStatus(), report)
}

func (a *api) healthAll(c *gin.Context) { a.healthReport(c, nil) }

func (a *api) healthService(c *gin.Context) {
	service := c.Param("service")
	if !a.Health.Has(service) {
		a.problem(c, http.StatusNotFound, "There is no dependency named "+apperr.Repr(service)+".", "", nil)
		return
	}
	a.healthReport(c, []string{service})
}

func (a *api) serviceMetrics(c *gin.Context) { a.Metrics.Handler(c.Writer) }

// -- vault ---------------------------------------------------------------------------------------

func (a *api) vaultSecret(c *gin.Context) {
	view, err := a.Secrets.Read(c.Request.Context(), c.Param("service"))
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, view)
}

func (a *api) vaultSecretKey(c *gin.Context) {
	value, err := a.Secrets.ReadKey(c.Request.Context(), c.Param("service"), c.Param("key"))
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, value)
}

// -- databases -------------------------------------------------------------------------------------

func (a *api) dbQuery(db string) gin.HandlerFunc {
	return func(c *gin.Context) {
		result, err := a.Items[db].Query(c.Request.Context())
		if err != nil {
			a.fail(c, err)
			return
		}
		send(c, http.StatusOK, result)
	}
}

func (a *api) dbList(db string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var errs fieldErrors
		limit := queryInt(c, &errs, "limit", stores.DefaultPage, 1, stores.MaxPage)
		if a.invalid(c, errs) {
			return
		}
		list, err := a.Items[db].List(c.Request.Context(), limit)
		if err != nil {
			a.fail(c, err)
			return
		}
		send(c, http.StatusOK, list)
	}
}

func (a *api) dbCreate(db string) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, ok := a.body(c)
		if !ok {
			return
		}
		var errs fieldErrors
		in := itemCreate(body, &errs)
		if a.invalid(c, errs) {
			return
		}
		item, err := a.Items[db].Create(c.Request.Context(), in)
		if err != nil {
			a.fail(c, err)
			return
		}
		c.Header("Location", "/examples/"+db+"/items/"+item.ID)
		send(c, http.StatusCreated, item)
	}
}

func (a *api) dbGet(db string) gin.HandlerFunc {
	return func(c *gin.Context) {
		item, err := a.Items[db].Get(c.Request.Context(), c.Param("item_id"))
		if err != nil {
			a.fail(c, err)
			return
		}
		send(c, http.StatusOK, item)
	}
}

func (a *api) dbDelete(db string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := a.Items[db].Delete(c.Request.Context(), c.Param("item_id")); err != nil {
			a.fail(c, err)
			return
		}
		noContent(c)
	}
}

// -- cache ---------------------------------------------------------------------------------------

func (a *api) cacheGet(c *gin.Context) {
	key := c.Param("key")
	var errs fieldErrors
	checkCacheKey(key, &errs)
	if a.invalid(c, errs) {
		return
	}
	entry, err := a.Cache.Get(c.Request.Context(), key)
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, entry)
}

func (a *api) cachePut(c *gin.Context) {
	body, ok := a.body(c)
	if !ok {
		return
	}
	key := c.Param("key")
	var errs fieldErrors
	checkCacheKey(key, &errs)
	value, ttl := cacheWrite(body, &errs)
	if a.invalid(c, errs) {
		return
	}
	entry, created, err := a.Cache.Put(c.Request.Context(), key, value, ttl)
	if err != nil {
		a.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	send(c, status, entry)
}

func (a *api) cacheDelete(c *gin.Context) {
	key := c.Param("key")
	var errs fieldErrors
	checkCacheKey(key, &errs)
	if a.invalid(c, errs) {
		return
	}
	if err := a.Cache.Delete(c.Request.Context(), key); err != nil {
		a.fail(c, err)
		return
	}
	noContent(c)
}

// -- messaging -------------------------------------------------------------------------------------

func (a *api) queueInspect(c *gin.Context) {
	queue := c.Param("queue")
	var errs fieldErrors
	checkQueueName(queue, &errs)
	if a.invalid(c, errs) {
		return
	}
	info, err := a.Queues.Inspect(c.Request.Context(), queue)
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, info)
}

func (a *api) queueConsume(c *gin.Context) {
	queue := c.Param("queue")
	var errs fieldErrors
	checkQueueName(queue, &errs)
	maxMessages := queryInt(c, &errs, "max", stores.DefaultConsume, 1, stores.MaxConsume)
	if a.invalid(c, errs) {
		return
	}
	result, settle, err := a.Queues.Consume(c.Request.Context(), queue, maxMessages)
	if err != nil {
		a.fail(c, err)
		return
	}
	body, err := problems.Marshal(result)
	if err != nil {
		settle(false) // given back at once
		panic(err)
	}
	c.Header("Content-Length", strconv.Itoa(len(body)))
	c.Data(http.StatusOK, "application/json", body)
	// Acknowledged only once the answer carrying them was written to the connection.
	settle(flushed(c))
}

func (a *api) queuePublish(c *gin.Context) {
	body, ok := a.body(c)
	if !ok {
		return
	}
	queue := c.Param("queue")
	var errs fieldErrors
	checkQueueName(queue, &errs)
	if _, isObject := object(body); !isObject {
		errs.add("body", "", "Input should be a valid dictionary")
	}
	if a.invalid(c, errs) {
		return
	}
	result, err := a.Queues.Publish(c.Request.Context(), queue, body)
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusAccepted, result)
}

// -- the Redis cluster -------------------------------------------------------------------------------

func (a *api) clusterNodes(c *gin.Context) {
	nodes, err := a.Cluster.Nodes(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, stores.ClusterNodes{Nodes: nodes})
}

func (a *api) clusterSlots(c *gin.Context) {
	slots, err := a.Cluster.Slots(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, slots)
}

func (a *api) clusterInfo(c *gin.Context) {
	info, err := a.Cluster.Info(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, info)
}

func (a *api) nodeInfo(c *gin.Context) {
	info, err := a.Cluster.NodeInfo(c.Request.Context(), c.Param("node"))
	if err != nil {
		a.fail(c, err)
		return
	}
	send(c, http.StatusOK, info)
}

// flushed pushes the answer to the connection and reports whether it got there.
func flushed(c *gin.Context) bool {
	if c.Request.Context().Err() != nil {
		return false
	}
	rc := http.NewResponseController(c.Writer)
	return rc.Flush() == nil && c.Request.Context().Err() == nil
}
