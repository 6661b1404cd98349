package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-notify/herald/harness"
	"github.com/herald-notify/herald/postgres"
)

// scratch is the database and RabbitMQ vhost one run creates, and drops afterwards.
type scratch struct {
	Name        string // of both the database and the vhost
	DatabaseURL string // as the owner of its tables: for the ceiling and the bench's own reads
	// ServiceURL is what Herald's processes connect as: the database's runtime role, holding only
	// what `herald migrate` grants, as in production (the owner when the database is not migrated).
	ServiceURL string
	AMQPURL    string
	Pool       *pgxpool.Pool

	db    *harness.Database
	vhost *harness.VHost
}

// createScratch creates a fresh database (migrated when migrate is set) and a vhost of the same
// name. On error, what was created is dropped again.
func createScratch(ctx context.Context, cfg Config, migrate bool) (_ *scratch, err error) {
	s := &scratch{Name: harness.RandomName("herald_bench_")}
	defer func() {
		if err != nil {
			_ = s.drop(context.WithoutCancel(ctx))
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s.db, err = harness.CreateDatabase(cctx, cfg.AdminDatabaseURL, harness.DatabaseOptions{
		Name: s.Name, Migrate: migrate, RuntimeRole: migrate, MaxConns: max(4, cfg.Concurrency, 16), AppName: "herald-bench",
	})
	if unreachable := (*harness.UnreachableError)(nil); errors.As(err, &unreachable) {
		return nil, fmt.Errorf("connect to PostgreSQL at %s (--admin-database-url): %w", unreachable.Addr, unreachable.Err)
	}
	if err != nil {
		return nil, err
	}
	s.DatabaseURL, s.ServiceURL, s.Pool = s.db.URL, cmp.Or(s.db.RuntimeURL, s.db.URL), s.db.Pool

	s.vhost, err = harness.CreateVHost(ctx, cfg.RabbitMQAPI, cfg.AMQPURL, s.Name)
	if unreachable := (*harness.UnreachableError)(nil); errors.As(err, &unreachable) {
		return nil, fmt.Errorf("create RabbitMQ vhost through the management API at %s (--rabbitmq-api; enable it with `rabbitmq-plugins enable rabbitmq_management`): %w", unreachable.Addr, unreachable.Err)
	}
	if err != nil {
		return nil, err
	}
	s.AMQPURL = s.vhost.AMQPURL
	return s, nil
}

// drop removes the database and the vhost; it reports what it could not remove.
func (s *scratch) drop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var problems []string
	if s.vhost != nil {
		if err := s.vhost.Delete(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if s.db != nil {
		if err := s.db.Drop(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("clean up: %s", strings.Join(problems, "; "))
	}
	return nil
}

// serviceVersions asks PostgreSQL and RabbitMQ their versions; a failure leaves a field empty.
func serviceVersions(ctx context.Context, cfg Config, pool *pgxpool.Pool) (pg, rabbit, erlang string) {
	if pool == nil {
		var err error
		if pool, err = postgres.Connect(ctx, cfg.AdminDatabaseURL, postgres.Options{MaxConns: 1, AppName: "herald-bench"}); err == nil {
			defer pool.Close()
		}
	}
	if pool != nil {
		_ = pool.QueryRow(ctx, "SHOW server_version").Scan(&pg)
	}
	var overview struct {
		RabbitMQ string `json:"rabbitmq_version"`
		Erlang   string `json:"erlang_version"`
	}
	if err := harness.RabbitAPI(ctx, cfg.RabbitMQAPI, http.MethodGet, "/api/overview", "", &overview); err == nil {
		rabbit, erlang = overview.RabbitMQ, overview.Erlang
	}
	return pg, rabbit, erlang
}
