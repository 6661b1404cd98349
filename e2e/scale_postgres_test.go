//go:build scale

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald/heraldtest"
)

// pgPair is a PostgreSQL primary and a streaming standby of the scale suite's own, on loopback
// ports of their own: the suite promotes the standby and stops the primary, which it must never
// do to the machine's shared server.
//
// The standby is synchronous (synchronous_standby_names names it, synchronous_commit is on): a
// commit returns only once the standby has flushed it, so a notification the API accepted is on
// the standby when the primary goes. With an asynchronous standby the commits that had not
// reached it when the primary went — the last moment's accepted notifications, their events and
// their commands in the outbox — are gone from the promoted server (docs/scaling.md).
type pgPair struct {
	bin              string // PostgreSQL's programs
	owner            *user.User
	dir              string
	primary, standby pgServer
}

// pgServer is one server of the pair.
type pgServer struct {
	data string
	port int
}

// standbyName is the standby's application_name, which synchronous_standby_names waits for.
const standbyName = "herald_standby"

// startPostgresPair initialises a primary, clones it into a synchronous standby with
// pg_basebackup and starts both, as the postgres user (PostgreSQL refuses to run as root). They
// are stopped and removed when the test ends.
func startPostgresPair(t *testing.T) *pgPair {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		requireTool(t, "no PostgreSQL server programs under /usr/lib/postgresql/*/bin: the scale suite runs a primary and a standby of its own")
	}
	sort.Slice(bins, func(i, j int) bool { return pgMajor(bins[i]) < pgMajor(bins[j]) })
	owner, err := user.Lookup("postgres")
	if err != nil {
		requireTool(t, "no postgres user to run PostgreSQL as: %v", err)
	}
	p := &pgPair{bin: filepath.Dir(bins[len(bins)-1]), owner: owner}
	if _, err := exec.LookPath("runuser"); err != nil {
		requireTool(t, "runuser is not on PATH: the scale suite runs PostgreSQL as the postgres user")
	}
	if p.dir, err = os.MkdirTemp("", "herald-scale-pg-"); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	if err := os.Chown(p.dir, uid, gid); err != nil {
		_ = os.RemoveAll(p.dir)
		requireTool(t, "cannot hand %s to the postgres user (the scale suite must run as root): %v", p.dir, err)
	}
	p.primary = pgServer{data: filepath.Join(p.dir, "primary"), port: freePort(t)}
	p.standby = pgServer{data: filepath.Join(p.dir, "standby"), port: freePort(t)}
	t.Cleanup(func() {
		for _, s := range []pgServer{p.standby, p.primary} {
			if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
				_, _ = p.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop")
			}
		}
		if t.Failed() {
			for _, s := range []pgServer{p.primary, p.standby} {
				p.logTail(t, s, 30)
			}
		}
		_ = os.RemoveAll(p.dir)
	})

	p.must(t, "initdb", "-D", p.primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	// fsync off: the suite loses servers by stopping them, never the machine, and a commit then
	// costs what replication costs rather than the shared disk's flushes.
	p.appendConf(t, p.primary, fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 200
shared_buffers = 64MB
fsync = off
wal_level = replica
max_wal_senders = 4
synchronous_commit = on
synchronous_standby_names = '%s'
`, p.primary.port, p.dir, standbyName))
	p.must(t, "pg_ctl", "-D", p.primary.data, "-l", p.logFile(p.primary), "-w", "start")
	p.must(t, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(p.primary.port), "-U", "postgres",
		"-D", p.standby.data, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	// The standby's own settings. It names no synchronous standby of its own: once promoted it
	// would wait for one that does not exist, and no commit would return.
	p.appendConf(t, p.standby, fmt.Sprintf(`
port = %d
synchronous_standby_names = ''
primary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'
`, p.standby.port, p.primary.port, standbyName))
	p.must(t, "pg_ctl", "-D", p.standby.data, "-l", p.logFile(p.standby), "-w", "start")

	// Synchronous before anything is written: until then a commit would not wait for it.
	ctx := context.Background()
	heraldtest.Eventually(t, 30*time.Second, "the standby to replicate synchronously", func() (bool, error) {
		conn, err := pgx.Connect(ctx, p.serverURL(p.primary, "postgres"))
		if err != nil {
			return false, err
		}
		defer conn.Close(ctx)
		var state string
		err = conn.QueryRow(ctx, `SELECT sync_state FROM pg_stat_replication WHERE application_name = $1`, standbyName).Scan(&state)
		return err == nil && state == "sync", fmt.Errorf("sync_state %q: %v", state, err)
	})
	t.Logf("PostgreSQL %s primary on 127.0.0.1:%d, synchronous standby on 127.0.0.1:%d, files in %s",
		filepath.Base(filepath.Dir(p.bin)), p.primary.port, p.standby.port, p.dir)
	return p
}

// pgMajor is the major version in a path under /usr/lib/postgresql.
func pgMajor(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// adminURL names both servers, as Herald is given them: libpq's multi-host form, where
// target_session_attrs=read-write connects to whichever is the primary.
func (p *pgPair) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		p.primary.port, p.standby.port)
}

// serverURL names one server.
func (p *pgPair) serverURL(s pgServer, database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, database)
}

// failover promotes the standby and then stops the primary (fast: its sessions are ended), as
// an operator or a failover manager would. Between the two the old primary still takes
// connections, but no commit there returns: each waits for the standby, which no longer
// replicates. It returns when the promotion began and when the old primary was gone.
func (p *pgPair) failover(t *testing.T) (began, done time.Time) {
	t.Helper()
	began = time.Now()
	p.must(t, "pg_ctl", "-D", p.standby.data, "-w", "promote")
	p.must(t, "pg_ctl", "-D", p.primary.data, "-m", "fast", "-w", "stop")
	return began, time.Now()
}

// must runs a PostgreSQL program as the postgres user and fails the test if it fails.
func (p *pgPair) must(t *testing.T, program string, args ...string) {
	t.Helper()
	if out, err := p.run(program, args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
}

// run runs a PostgreSQL program as the postgres user, within a minute.
func (p *pgPair) run(program string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", p.owner.Username, "--", filepath.Join(p.bin, program)}, args...)...)
	cmd.Dir = p.dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// appendConf adds settings to a server's postgresql.auto.conf, which wins over postgresql.conf.
func (p *pgPair) appendConf(t *testing.T, s pgServer, settings string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(settings); err != nil {
		t.Fatal(err)
	}
}

func (p *pgPair) logFile(s pgServer) string {
	return filepath.Join(p.dir, filepath.Base(s.data)+".log")
}

// logTail prints the end of a server's log.
func (p *pgPair) logTail(t *testing.T, s pgServer, lines int) {
	t.Helper()
	b, err := os.ReadFile(p.logFile(s))
	if err != nil {
		t.Logf("PostgreSQL %s log: %v", filepath.Base(s.data), err)
		return
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	t.Logf("PostgreSQL %s: last %d lines of its log:\n%s", filepath.Base(s.data), len(all), strings.Join(all, "\n"))
}
