package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// machine describes what `make services` finds: each tool it asks about answers with the exit
// status given (a tool absent from the map is not installed).
type machine struct {
	tools     map[string]string // name → shell body of a stand-in
	osRelease string            // contents of /etc/os-release
	env       string            // contents of an existing .env, if any
	vars      []string          // extra environment
}

const (
	ok   = "exit 0"
	fail = "exit 1"
	root = `[ "${1:-}" = -u ] && echo 0`
	user = `[ "${1:-}" = -u ] && echo 1000`
	// This machine: a docker client with neither an engine nor the compose plugin.
	dockerNoEngine = `case "$1" in compose) echo "docker: unknown command: docker compose" >&2; exit 1;; info) exit 1;; esac`
	dockerCompose  = `exit 0`
	debian         = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
	ubuntu         = "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n"
	fedora         = "NAME=\"Fedora Linux\"\nID=fedora\n"
)

// run runs scripts/services.sh with args on m, with only the stand-ins (and the given real tools)
// on its PATH, and returns its output and whether it succeeded.
func run(t *testing.T, m machine, real []string, args ...string) (string, bool, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range m.tools {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range real {
		path, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.Symlink(path, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	osRelease := filepath.Join(dir, "os-release")
	if err := os.WriteFile(osRelease, []byte(m.osRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "env")
	if m.env != "" {
		if err := os.WriteFile(envFile, []byte(m.env), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script, err := filepath.Abs("services.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", append([]string{script}, args...)...)
	cmd.Env = append([]string{"PATH=" + bin, "SERVICES_OS_RELEASE=" + osRelease, "SERVICES_ENV_FILE=" + envFile}, m.vars...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil, envFile
}

func TestServicesDetection(t *testing.T) {
	running := map[string]string{"pg_isready": ok, "rabbitmq-diagnostics": ok}
	with := func(base map[string]string, more map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		m       machine
		want    string // the way, or a part of the error
		wantErr bool
	}{
		{"this machine: services running, docker without engine or compose",
			machine{tools: with(running, map[string]string{"docker": dockerNoEngine, "id": root, "apt-get": ok}), osRelease: debian}, "local", false},
		{"services running beside docker compose: use them, compose could not bind their ports",
			machine{tools: with(running, map[string]string{"docker": dockerCompose, "id": user}), osRelease: fedora}, "local", false},
		{"docker compose with an engine, nothing running",
			machine{tools: map[string]string{"docker": dockerCompose, "pg_isready": fail, "id": user}, osRelease: fedora}, "compose", false},
		{"docker compose, PostgreSQL running but RabbitMQ not",
			machine{tools: map[string]string{"docker": dockerCompose, "pg_isready": ok, "rabbitmq-diagnostics": fail, "id": user}, osRelease: debian}, "compose", false},
		{"Debian, nothing installed, as root",
			machine{tools: map[string]string{"docker": dockerNoEngine, "id": root, "apt-get": ok}, osRelease: debian}, "install", false},
		{"Ubuntu, PostgreSQL installed and stopped, as root",
			machine{tools: map[string]string{"pg_isready": fail, "id": root, "apt-get": ok}, osRelease: ubuntu}, "install", false},
		{"Debian, PostgreSQL running, RabbitMQ stopped, as root",
			machine{tools: map[string]string{"pg_isready": ok, "rabbitmq-diagnostics": fail, "id": root, "apt-get": ok}, osRelease: debian}, "install", false},
		{"Debian, nothing installed, not root",
			machine{tools: map[string]string{"id": user, "apt-get": ok}, osRelease: debian}, "sudo make services", true},
		{"neither Debian nor Docker nor services",
			machine{tools: map[string]string{"id": root}, osRelease: fedora}, "start PostgreSQL 13+ and RabbitMQ 3.10+", true},
		{"an .env keeps the way it was made",
			machine{tools: with(running, map[string]string{"docker": dockerCompose, "id": user}), osRelease: fedora,
				env: "# services: compose\nPOSTGRES_PASSWORD=x\n"}, "compose", false},
		{"an .env from before the way was recorded came from compose",
			machine{tools: with(running, map[string]string{"docker": dockerCompose, "id": user}), osRelease: fedora, env: "POSTGRES_PASSWORD=x\n"}, "compose", false},
		{"an .env left by a compose that never ran is not a way: use the services running here",
			machine{tools: with(running, map[string]string{"docker": dockerNoEngine, "id": root, "apt-get": ok}), osRelease: debian, env: "POSTGRES_PASSWORD=x\n"}, "local", false},
		{"SERVICES_VIA chooses",
			machine{tools: with(running, map[string]string{"id": user}), osRelease: fedora, vars: []string{"SERVICES_VIA=install"}}, "install", false},
		{"SERVICES_VIA must be a known way",
			machine{tools: with(running, map[string]string{"id": user}), osRelease: fedora, vars: []string{"SERVICES_VIA=podman"}}, "want local, compose or install", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, succeeded, _ := run(t, tt.m, nil, "detect")
			switch {
			case succeeded == tt.wantErr:
				t.Errorf("detect succeeded = %v, want %v; output: %s", succeeded, !tt.wantErr, out)
			case !tt.wantErr && out != tt.want:
				t.Errorf("detect = %q, want %q", out, tt.want)
			case tt.wantErr && !strings.Contains(out, tt.want):
				t.Errorf("detect said %q, want it to say %q", out, tt.want)
			}
		})
	}
}

// When the services cannot be started, no .env is written: one with fresh secrets that nothing
// uses would make every later `make run` fail to log in.
func TestServicesWriteNoEnvWhenStartFails(t *testing.T) {
	m := machine{
		tools: map[string]string{
			"docker":     `case "$1 $4" in "compose up") echo "Cannot connect to the Docker daemon" >&2; exit 1;; esac; exit 0`,
			"pg_isready": fail,
			"id":         user,
			"openssl":    `echo 0123456789abcdef0123456789abcdef`,
		},
		osRelease: fedora,
	}
	out, succeeded, envFile := run(t, m, []string{"rm", "mv"})
	if succeeded {
		t.Fatalf("services.sh succeeded though docker compose up failed: %s", out)
	}
	if !strings.Contains(out, "could not start the services") {
		t.Errorf("services.sh said %q, want it to say the services could not start", out)
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf(".env after a failed start: %v, want none", err)
	}
	if _, err := os.Stat(envFile + ".tmp"); !os.IsNotExist(err) {
		t.Errorf(".env.tmp after a failed start: %v, want none", err)
	}
}

// With Docker Compose up, .env is written once the services run and accept the secrets, records
// the way it was made, and keeps its secrets when make services runs again.
func TestServicesComposeWritesEnvOnceUp(t *testing.T) {
	m := machine{
		tools: map[string]string{
			// Both read what they are given on standard input, as the real ones do.
			"docker":     `read -r -d '' _; exit 0`,
			"pg_isready": fail,
			"id":         user,
			"curl":       `read -r -d '' _; exit 0`,
			"openssl":    `printf '%032x\n' $RANDOM$RANDOM`,
		},
		osRelease: fedora,
	}
	real := []string{"rm", "mv", "seq", "sed"}
	out, succeeded, envFile := run(t, m, real)
	if !succeeded {
		t.Fatalf("services.sh with docker compose: %s", out)
	}
	first, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf(".env after docker compose started: %v", err)
	}
	for _, want := range []string{"# services: compose\n", "HERALD_DATABASE_URL=postgres://herald_app:", "HERALD_MIGRATE_DATABASE_URL=postgres://herald:",
		"HERALD_TEST_DATABASE_URL=postgres://postgres:", "HERALD_AMQP_URL=amqp://herald:"} {
		if !strings.Contains(string(first), want) {
			t.Errorf(".env lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(out, "PASSWORD") || strings.Contains(out, "postgres://") {
		t.Errorf("services.sh printed secrets: %s", out)
	}
	if info, err := os.Stat(envFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf(".env mode: %v, %v; want 0600", info.Mode().Perm(), err)
	}

	m.env = string(first)
	out, succeeded, envFile = run(t, m, real)
	if !succeeded {
		t.Fatalf("services.sh run again failed: %s", out)
	}
	if second, _ := os.ReadFile(envFile); string(second) != string(first) {
		t.Errorf("make services run again changed .env:\n%s\nwas:\n%s", second, first)
	}
}

// Run through sudo, make services leaves .env to the user who ran sudo: make run and make test,
// run as that user, must be able to read it.
func TestServicesGiveEnvToTheSudoUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a file away")
	}
	m := machine{
		tools: map[string]string{
			"docker":     `read -r -d '' _; exit 0`,
			"pg_isready": fail,
			"id":         root,
			"curl":       `read -r -d '' _; exit 0`,
			"openssl":    `printf '%032x\n' $RANDOM$RANDOM`,
		},
		osRelease: fedora,
		vars:      []string{"SUDO_UID=65534", "SUDO_GID=65534"},
	}
	out, succeeded, envFile := run(t, m, []string{"rm", "mv", "seq", "sed", "chown"})
	if !succeeded {
		t.Fatalf("services.sh through sudo: %s", out)
	}
	info, err := os.Stat(envFile)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf(".env belongs to %v; want 65534:65534, the user who ran sudo", info.Sys())
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf(".env mode %v; want 0600", info.Mode().Perm())
	}
}
