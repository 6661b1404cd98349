package migrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AppendOnly names the tables Herald's services may only read and append to: no UPDATE, DELETE
// or TRUNCATE, and, since the services do not own them, no ALTER or DROP either. Beside the log,
// the stored templates' versions: a send by name renders the row, which must stay what its
// TemplateVersionCreated says. The log's signed checkpoints, which a verifier holds it to. And
// the roots of the tree's subtrees the sealer stores for proofs: a cache a proof is checked
// against the signed root from, but not one the services may rewrite.
var AppendOnly = []string{"event_log", "template_versions", "checkpoints", "merkle_subtrees"}

// ErrRoleOwnsLog is returned by GrantRuntime when the runtime role can act as the event log's
// owner (it is the owner, a member of the owner's role, or a superuser): an owner can disable the
// log's triggers or drop it, whatever it is granted.
var ErrRoleOwnsLog = errors.New("the runtime role can act as the event log's owner")

// ErrNoRole is returned by GrantRuntime when the runtime role does not exist.
var ErrNoRole = errors.New("the runtime role does not exist")

// GrantRuntime gives role — the one Herald's services connect as — exactly what they need on the
// schema the migrations built: reading and writing the outbox, the read models, the offsets,
// the API keys and the workers' circuit breaker states (provider_breakers); reading and
// appending to the append-only tables (checkpoints only through checkpoint_append); reading the
// schema version. Privileges it held before are revoked first, so the grants are the same after every run. It
// must run as the tables' owner, after the migrations, and it runs in one transaction.
//
// The services never own a table: ownership is what would let them ALTER TABLE … DISABLE TRIGGER
// or DROP TABLE the log. To rebuild a read model they call the functions the owner lends them for
// that (create_rebuild_table, swap_rebuild_table, drop_rebuild_table), which refuse any other
// table and give the rebuilt table the live one's owner and grants.
func GrantRuntime(ctx context.Context, pool *pgxpool.Pool, role string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Processes started together with --migrate all grant: one at a time, or PostgreSQL
		// refuses the second's catalogue updates ("tuple concurrently updated").
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('herald: grant the runtime role'))`); err != nil {
			return fmt.Errorf("wait for other grants: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("%w: create it (see the README: the database roles)", ErrNoRole)
		}
		var schema string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		for _, table := range AppendOnly {
			var owner string
			var owns bool
			if err := tx.QueryRow(ctx, `SELECT pg_get_userbyid(relowner), pg_has_role($2, relowner, 'MEMBER')
				FROM pg_class WHERE oid = $1::regclass`, table, role).Scan(&owner, &owns); err != nil {
				return fmt.Errorf("owner of %s: %w", table, err)
			}
			if owns {
				return fmt.Errorf("%w (%s, owned by %s): run the services as a role that is neither a superuser nor a member of %s",
					ErrRoleOwnsLog, table, owner, owner)
			}
		}
		r, s := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
		stmts := []string{
			`REVOKE ALL ON ALL TABLES IN SCHEMA ` + s + ` FROM ` + r,
			`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + s + ` FROM ` + r,
			`GRANT USAGE ON SCHEMA ` + s + ` TO ` + r,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + s + ` TO ` + r,
			`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ` + s + ` TO ` + r,
			// The schema version is read at start-up and written only by `herald migrate`.
			`REVOKE INSERT, UPDATE, DELETE ON ` + pgx.Identifier{Table}.Sanitize() + ` FROM ` + r,
		}
		for _, table := range AppendOnly {
			stmts = append(stmts, `REVOKE UPDATE, DELETE ON `+pgx.Identifier{table}.Sanitize()+` FROM `+r)
		}
		// A checkpoint is appended only through checkpoint_append, which takes the next seq
		// alone and never a smaller tree: no INSERT of any row the client chooses.
		stmts = append(stmts, `REVOKE INSERT ON checkpoints FROM `+r,
			// The log's identity is made once, by the migration.
			`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON log_identity FROM `+r,
			`GRANT EXECUTE ON FUNCTION checkpoint_append(bigint, bigint, xid8, bigint, bytea, bytea, text, bytea, timestamptz) TO `+r)
		// Rebuilding a read model needs DDL, lent by the owner for the read models alone.
		stmts = append(stmts, `GRANT EXECUTE ON FUNCTION create_rebuild_table(text), drop_rebuild_table(text), swap_rebuild_table(text) TO `+r)
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("grant role %s: %w", role, err)
	}
	return nil
}
