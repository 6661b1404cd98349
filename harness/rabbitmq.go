package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/herald-notify/herald/redact"
)

// VHost is a scratch RabbitMQ virtual host, deleted by Delete. Its queues have Herald's real
// names and are its own.
type VHost struct {
	Name string
	// AMQPURL connects to it.
	AMQPURL string

	api string
}

// CreateVHost creates a virtual host named name through the management API at api (whose URL
// carries the credentials) and grants it to the user of amqpURL, whose URL it returns pointed
// at the new vhost. An API that cannot be reached, or refuses to create it, is an
// *UnreachableError. On error, a vhost already made is deleted again.
func CreateVHost(ctx context.Context, api, amqpURL, name string) (_ *VHost, err error) {
	a, err := url.Parse(amqpURL)
	if err != nil {
		return nil, fmt.Errorf("parse the AMQP URL: %w", redactURLError(err))
	}
	v := &VHost{Name: name, api: strings.TrimRight(api, "/")}
	if err := RabbitAPI(ctx, v.api, http.MethodPut, "/api/vhosts/"+url.PathEscape(name), "", nil); err != nil {
		return nil, &UnreachableError{Service: "RabbitMQ's management API", Addr: redact.URL(v.api), Err: err}
	}
	defer func() {
		if err != nil {
			_ = v.Delete(context.WithoutCancel(ctx))
		}
	}()
	user := a.User.Username()
	if user == "" {
		user = "guest"
	}
	if err := RabbitAPI(ctx, v.api, http.MethodPut, "/api/permissions/"+url.PathEscape(name)+"/"+url.PathEscape(user),
		`{"configure":".*","write":".*","read":".*"}`, nil); err != nil {
		return nil, fmt.Errorf("grant %s the vhost %s: %w", user, name, err)
	}
	a.Path, a.RawPath = "/"+name, ""
	v.AMQPURL = a.String()
	return v, nil
}

// Delete deletes the vhost and everything in it.
func (v *VHost) Delete(ctx context.Context) error {
	if err := RabbitAPI(ctx, v.api, http.MethodDelete, "/api/vhosts/"+url.PathEscape(v.Name), "", nil); err != nil {
		return fmt.Errorf("delete vhost %s: %w", v.Name, err)
	}
	return nil
}

// VHostOf returns the name of the vhost amqpURL names ("/" for the default one).
func VHostOf(amqpURL string) (string, error) {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return "", fmt.Errorf("parse the AMQP URL: %w", redactURLError(err))
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	return vhost, nil
}

// RabbitAPI calls RabbitMQ's management API at api (whose URL carries the credentials) with
// method, path and a JSON body, fails unless it answers 2xx, and decodes a JSON answer into out
// when out is not nil. The call is bounded by 15 s.
func RabbitAPI(ctx context.Context, api, method, path, body string, out any) error {
	u, err := url.Parse(strings.TrimRight(api, "/"))
	if err != nil {
		return fmt.Errorf("parse the management API URL: %w", redactURLError(err))
	}
	var user, pw string
	if u.User != nil {
		user = u.User.Username()
		pw, _ = u.User.Password()
		u.User = nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String()+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// redactURLError keeps the URL url.Parse quotes in its error (and its password) out of it.
func redactURLError(err error) error {
	if uerr, ok := err.(*url.Error); ok {
		return uerr.Err
	}
	return err
}
