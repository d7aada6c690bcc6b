package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"devstack/polyglot/golang/internal/apperr"
	"devstack/polyglot/golang/internal/redact"
	"devstack/polyglot/golang/internal/vault"
)

// View is the contract's VaultSecret: every secret-looking value masked.
type View struct {
	Service    string            `json:"service"`
	Path       string            `json:"path"`
	Version    int               `json:"version"`
	Data       map[string]string `json:"data"`
	MaskedKeys []string          `json:"masked_keys"`
}

// Value is the contract's VaultSecretValue.
type Value struct {
	Service string `json:"service"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	Masked  bool   `json:"masked"`
}

// Reader shows the dependencies' application secrets, masked, from the cache.
type Reader struct {
	store    *Store
	services []string
	mount    string
}

// NewReader reads the secrets of services (paths named after them) in mount.
func NewReader(store *Store, services []string, mount string) *Reader {
	return &Reader{store: store, services: services, mount: mount}
}

// asText spells a non-string value as JSON does (true, 3, null).
func asText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Read is a service's secret, masked; any other name (admin, vault, an app) is NotFound.
func (r *Reader) Read(ctx context.Context, service string) (View, error) {
	if !slices.Contains(r.services, service) {
		return View{}, apperr.NotFound("no secret for %s", apperr.Repr(service))
	}
	secret, err := r.store.Get(ctx, service)
	if err != nil {
		if vault.IsForbidden(err) {
			return View{}, apperr.NotFound("the secret of %s is not readable", apperr.Repr(service))
		}
		return View{}, err
	}
	view := View{
		Service: service, Path: r.mount + "/" + service, Version: secret.Version,
		Data: map[string]string{}, MaskedKeys: []string{},
	}
	for key, value := range secret.Data {
		if redact.IsMaskedKey(key) {
			view.Data[key] = redact.Mask
			view.MaskedKeys = append(view.MaskedKeys, key)
		} else {
			view.Data[key] = asText(value)
		}
	}
	sort.Strings(view.MaskedKeys)
	return view, nil
}

// ReadKey is one key of a service's secret, masked when secret-looking.
func (r *Reader) ReadKey(ctx context.Context, service, key string) (Value, error) {
	view, err := r.Read(ctx, service)
	if err != nil {
		return Value{}, err
	}
	value, ok := view.Data[key]
	if !ok {
		return Value{}, apperr.NotFound("the secret of %s has no key %s", apperr.Repr(service), apperr.Repr(key))
	}
	return Value{Service: service, Key: key, Value: value, Masked: redact.IsMaskedKey(key)}, nil
}
