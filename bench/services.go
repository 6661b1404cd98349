package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/migrations"
	"github.com/herald-notify/herald/redact"
)

// scratch is the database and RabbitMQ vhost one run creates, and drops afterwards.
type scratch struct {
	Name        string // of both the database and the vhost
	DatabaseURL string
	AMQPURL     string
	Pool        *pgxpool.Pool

	adminURL string
	api      string
	vhostUp  bool
	dbUp     bool
}

func randomName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "herald_bench_" + hex.EncodeToString(b)
}

// createScratch creates a fresh database (migrated when migrate is set) and a vhost. On error,
// what was created is dropped again.
func createScratch(ctx context.Context, cfg Config, migrate bool) (_ *scratch, err error) {
	s := &scratch{Name: randomName(), adminURL: cfg.AdminDatabaseURL, api: strings.TrimRight(cfg.RabbitMQAPI, "/")}
	defer func() {
		if err != nil {
			s.drop(context.WithoutCancel(ctx))
		}
	}()

	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	admin, err := pgx.Connect(cctx, cfg.AdminDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s (--admin-database-url): %w", redact.URL(cfg.AdminDatabaseURL), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{s.Name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", s.Name, err)
	}
	s.dbUp = true
	pcfg, err := pgxpool.ParseConfig(cfg.AdminDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("--admin-database-url: %w", err)
	}
	pcfg.ConnConfig.Database = s.Name
	pcfg.MaxConns = int32(max(4, cfg.Concurrency, 16))
	pcfg.ConnConfig.RuntimeParams["application_name"] = "herald-bench"
	if s.Pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.Name, err)
	}
	u, _ := url.Parse(cfg.AdminDatabaseURL)
	u.Path = "/" + s.Name
	s.DatabaseURL = u.String()
	if migrate {
		m, err := migrations.New(s.Pool)
		if err != nil {
			return nil, err
		}
		_, err = m.Up(ctx)
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("migrate %s: %w", s.Name, err)
		}
	}

	if err := rabbitAPI(ctx, http.MethodPut, s.api, "/api/vhosts/"+s.Name, "", nil); err != nil {
		return nil, fmt.Errorf("create RabbitMQ vhost through the management API at %s (--rabbitmq-api; enable it with `rabbitmq-plugins enable rabbitmq_management`): %w", redact.URL(s.api), err)
	}
	s.vhostUp = true
	a, err := url.Parse(cfg.AMQPURL)
	if err != nil {
		return nil, fmt.Errorf("--amqp-url: %w", err)
	}
	user := a.User.Username()
	if user == "" {
		user = "guest"
	}
	if err := rabbitAPI(ctx, http.MethodPut, s.api, "/api/permissions/"+s.Name+"/"+url.PathEscape(user),
		`{"configure":".*","write":".*","read":".*"}`, nil); err != nil {
		return nil, fmt.Errorf("grant %s the vhost %s: %w", user, s.Name, err)
	}
	a.Path = "/" + s.Name
	s.AMQPURL = a.String()
	return s, nil
}

// drop removes the database and the vhost; it reports what it could not remove.
func (s *scratch) drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if s.Pool != nil {
		s.Pool.Close()
	}
	var problems []string
	if s.vhostUp {
		if err := rabbitAPI(ctx, http.MethodDelete, s.api, "/api/vhosts/"+s.Name, "", nil); err != nil {
			problems = append(problems, fmt.Sprintf("delete vhost %s: %v", s.Name, err))
		}
	}
	if s.dbUp {
		conn, err := pgx.Connect(ctx, s.adminURL)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.Name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("drop database %s: %v", s.Name, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("clean up: %s", strings.Join(problems, "; "))
	}
	return nil
}

// rabbitAPI calls RabbitMQ's management API at api (whose URL carries the credentials) and
// decodes a JSON answer into out, if not nil.
func rabbitAPI(ctx context.Context, method, api, path, body string, out any) error {
	u, err := url.Parse(api)
	if err != nil {
		return err
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

// serviceVersions asks PostgreSQL and RabbitMQ their versions; a failure leaves a field empty.
func serviceVersions(ctx context.Context, cfg Config, pool *pgxpool.Pool) (pg, rabbit, erlang string) {
	if pool != nil {
		_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&pg)
	} else if conn, err := pgx.Connect(ctx, cfg.AdminDatabaseURL); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&pg)
		conn.Close(ctx)
	}
	var overview struct {
		RabbitMQ string `json:"rabbitmq_version"`
		Erlang   string `json:"erlang_version"`
	}
	if err := rabbitAPI(ctx, http.MethodGet, strings.TrimRight(cfg.RabbitMQAPI, "/"), "/api/overview", "", &overview); err == nil {
		rabbit, erlang = overview.RabbitMQ, overview.Erlang
	}
	return pg, rabbit, erlang
}
