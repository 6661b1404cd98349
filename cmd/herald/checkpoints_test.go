package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/heraldtest"
	"github.com/herald-notify/herald/ledger"
	"github.com/herald-notify/herald/wire"
)

// A key made by "keys generate" signs the checkpoints "herald projector" seals, each copied to the
// checkpoint file; "checkpoints list" shows the same; "events verify" checks the log against
// them with the public key printed, and names what was changed behind the database's back.
func TestCheckpointsSealedListedAndVerified(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	dir := t.TempDir()
	keyFile, cpFile := filepath.Join(dir, "checkpoint.key"), filepath.Join(dir, "checkpoints.jsonl")

	out := mustRunHerald(t, "keys", "generate", "--out", keyFile)
	m := regexp.MustCompile(`Public key \(base64\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys generate printed no public key:\n%s", out)
	}
	pub := m[1]
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	before, _ := os.ReadFile(keyFile)
	if _, err := runHerald(t, "keys", "generate", "--out", keyFile); err == nil {
		t.Error("keys generate overwrote an existing key")
	}
	if after, _ := os.ReadFile(keyFile); string(after) != string(before) {
		t.Error("the existing key file changed")
	}

	log := events.NewLog(db.Pool)
	stream := uuid.NewString()
	var ids []string
	for v := range int64(5) {
		recs, err := log.Append(t.Context(), stream, v, events.Metadata{}, &events.NotificationProcessing{Attempt: int(v) + 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, recs[0].ID)
	}
	heraldtest.WaitLogVisible(t, db, 5)
	h := spawnHerald(t, map[string]string{"HERALD_DATABASE_URL": db.RuntimeURL, "HERALD_CHECKPOINT_KEY": keyFile,
		"HERALD_CHECKPOINT_INTERVAL": "100ms", "HERALD_CHECKPOINT_FILE": cpFile}, "projector")
	var witnessed []wire.Checkpoint
	heraldtest.Eventually(t, 30*time.Second, "a checkpoint of 5 events in the checkpoint file", func() (bool, error) {
		b, err := os.ReadFile(cpFile)
		if os.IsNotExist(err) {
			return false, nil
		}
		witnessed = decodeJSONL[wire.Checkpoint](t, string(b))
		return len(witnessed) > 0 && witnessed[len(witnessed)-1].TreeSize == 5, err
	})
	if len(witnessed) != 1 {
		t.Errorf("%d checkpoints of a log of 5 events that did not grow, want 1:\n%+v\n%s", len(witnessed), witnessed, h.output())
	}

	var listed []wire.Checkpoint
	if err := json.Unmarshal([]byte(mustRunHerald(t, "checkpoints", "list", "-o", "json", "--database-url", db.URL)), &listed); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(witnessed, listed); diff != "" {
		t.Errorf("checkpoints list differs from the checkpoint file (-file +list):\n%s", diff)
	}

	out = mustRunHerald(t, "events", "verify", "--public-key", pub, "--database-url", db.URL)
	if !strings.Contains(out, "Verified 5 events (1 streams begun) and 1 checkpoints") || !strings.Contains(out, "Signatures checked") {
		t.Errorf("verify printed:\n%s", out)
	}

	// A proof of version 3, checked offline; changed, it is refused.
	bundle := filepath.Join(dir, "proof.json")
	if err := os.WriteFile(bundle, []byte(mustRunHerald(t, "events", "prove", ids[2], "--database-url", db.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	out = mustRunHerald(t, "verify-bundle", bundle, "--public-key", pub)
	if !strings.Contains(out, "Event "+ids[2]+" (stream "+stream+" version 3") || !strings.Contains(out, "leaf 2 of the 5 events checkpoint 1 of log "+listed[0].LogID) {
		t.Errorf("verify-bundle printed:\n%s", out)
	}
	// A bundle is of one log: another log id is refused, even with the right key.
	mustRunHerald(t, "verify-bundle", bundle, "--public-key", pub, "--log-id", listed[0].LogID)
	if _, err := runHerald(t, "verify-bundle", bundle, "--public-key", pub, "--log-id", uuid.NewString()); err == nil || !strings.Contains(err.Error(), "--log-id") {
		t.Errorf("verify-bundle with another log id: %v, want it refused", err)
	}
	// Nor does changing the log id in the bundle make it another log's: the signature covers it.
	b0, _ := os.ReadFile(bundle)
	other := strings.Replace(string(b0), listed[0].LogID, uuid.NewString(), 1)
	if err := os.WriteFile(bundle, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", bundle, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("verify-bundle with its log id changed: %v, want the signature named", err)
	}
	if err := os.WriteFile(bundle, b0, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(bundle)
	forged := strings.Replace(string(b), `\"attempt\": 3`, `\"attempt\": 4`, 1)
	if forged == string(b) {
		t.Fatalf("the bundle does not hold the event's data as expected:\n%s", b)
	}
	if err := os.WriteFile(bundle, []byte(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", bundle, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("verify-bundle of a changed event: %v, want its hash named", err)
	}

	for _, s := range []string{`ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete`,
		`UPDATE event_log SET data = '{"attempt": 9}' WHERE stream_version = 4`,
		`ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete`} {
		if _, err := db.Pool.Exec(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runHerald(t, "events", "verify", "--public-key", pub, "--database-url", db.URL, "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "stream "+stream+" version 4") || !strings.Contains(err.Error(), "hash") {
		t.Errorf("verify of a changed log: %v, want an error naming version 4's hash", err)
	}
	var v wire.Verification
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.OK || v.Mismatch == nil || v.Mismatch.Field != "hash" || v.Mismatch.Stream != stream || v.Mismatch.Version != 4 || v.Events != 3 {
		t.Errorf("verify -o json: %+v, mismatch %+v; want not ok, version 4's hash named, after 3 events", v, v.Mismatch)
	}
}

// Without a key the projector runs, and says once that it seals no checkpoints.
func TestProjectorWithoutKeySaysSo(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	h := spawnHerald(t, map[string]string{"HERALD_DATABASE_URL": db.RuntimeURL}, "projector")
	heraldtest.Eventually(t, 30*time.Second, "the projector to say it seals no checkpoints", func() (bool, error) {
		return strings.Contains(h.output(), "no checkpoint key"), nil
	})
	if n := strings.Count(h.output(), "no checkpoint key"); n != 1 {
		t.Errorf("said %d times", n)
	}
}

// Bad verify and keys flags are refused before anything is read or written.
func TestLedgerCommandsRefuseBadFlags(t *testing.T) {
	clearHeraldEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"events", "verify", "--public-key", "not-a-key", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, "--public-key"},
		{[]string{"events", "verify", "--from-checkpoint", "-1", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, "--from-checkpoint"},
		{[]string{"keys", "generate"}, "--out"},
		{[]string{"checkpoints", "list", "--limit", "-2", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, "--limit"},
	} {
		_, err := runHerald(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("herald %s: %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// verify --witness and --expect name a witnessed checkpoint the database lost; with
// --public-key, a log with no checkpoint fails unless --allow-unsealed.
func TestVerifyHoldsTheDatabaseToItsWitness(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	_, key, _ := ed25519.GenerateKey(nil)
	pub := ledger.EncodePublicKey(key.Public().(ed25519.PublicKey))
	if _, err := events.NewLog(db.Pool).Append(ctx, uuid.NewString(), 0, events.Metadata{}, &events.NotificationProcessing{Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	heraldtest.WaitLogVisible(t, db, 1)
	cp, _, err := ledger.NewSealer(db.Pool, key).Seal(ctx)
	if err != nil || cp == nil {
		t.Fatalf("seal: %+v, %v", cp, err)
	}
	cpFile := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := appendCheckpoint(cpFile, *cp); err != nil {
		t.Fatal(err)
	}
	if last, err := lastCheckpointInFile(cpFile); err != nil || last == nil || last.Seq != 1 || last.Root != cp.Root {
		t.Fatalf("last checkpoint in the file: %+v, %v", last, err)
	}
	expect := fmt.Sprintf("1:%x", cp.Root[:])
	out := mustRunHerald(t, "events", "verify", "--public-key", pub, "--witness", cpFile, "--expect", expect, "--database-url", db.URL)
	if !strings.Contains(out, "2 witnessed checkpoints found") {
		t.Errorf("verify with a witness printed:\n%s", out)
	}

	for _, s := range []string{`ALTER TABLE checkpoints DISABLE TRIGGER USER`, `DELETE FROM checkpoints`, `ALTER TABLE checkpoints ENABLE TRIGGER USER`} {
		if _, err := db.Pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, flag := range [][]string{{"--witness", cpFile}, {"--expect", expect}} {
		args := append([]string{"events", "verify", "--public-key", pub, "--database-url", db.URL}, flag...)
		if _, err := runHerald(t, args...); err == nil || !strings.Contains(err.Error(), "checkpoint 1: witness") {
			t.Errorf("verify %s after the checkpoints were deleted: %v, want checkpoint 1's witness named", flag[0], err)
		}
	}
	out, err = runHerald(t, "events", "verify", "--public-key", pub, "--database-url", db.URL)
	if err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("verify --public-key of a log with no checkpoint: %v, want it refused", err)
	}
	// Nothing was checked against the key: the summary does not say it was.
	if strings.Contains(out, "Signatures checked") || !strings.Contains(out, "No signature checked") {
		t.Errorf("verify --public-key of a log with no checkpoint printed:\n%s", out)
	}
	out = mustRunHerald(t, "events", "verify", "--public-key", pub, "--allow-unsealed", "--database-url", db.URL)
	if strings.Contains(out, "Signatures checked") {
		t.Errorf("verify --allow-unsealed of a log with no checkpoint claims a signature check:\n%s", out)
	}
	jsonOut, _ := runHerald(t, "events", "verify", "--public-key", pub, "--allow-unsealed", "--database-url", db.URL, "-o", "json")
	var v wire.Verification
	if err := json.Unmarshal([]byte(jsonOut), &v); err != nil || v.SignaturesChecked {
		t.Errorf("verify -o json of a log with no checkpoint: %+v, %v; want signatures_checked false", v, err)
	}
	if _, err := runHerald(t, "events", "verify", "--expect", "1:zz", "--database-url", db.URL); err == nil || !strings.Contains(err.Error(), "--expect") {
		t.Errorf("verify --expect 1:zz: %v, want the flag named", err)
	}
}

// events export writes a stream's events with their chain, and with --proof a bundle for each
// sealed one that verify-bundle accepts, counting the unsealed; a changed event is refused.
func TestEventsExportWithProof(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	_, key, _ := ed25519.GenerateKey(nil)
	pub := ledger.EncodePublicKey(key.Public().(ed25519.PublicKey))
	log := events.NewLog(db.Pool)
	stream := uuid.NewString()
	for v := range int64(2) {
		if _, err := log.Append(ctx, stream, v, events.Metadata{}, &events.NotificationProcessing{Attempt: int(v) + 1}); err != nil {
			t.Fatal(err)
		}
	}
	heraldtest.WaitLogVisible(t, db, 2)
	if cp, _, err := ledger.NewSealer(db.Pool, key).Seal(ctx); err != nil || cp == nil {
		t.Fatalf("seal: %+v, %v", cp, err)
	}
	if _, err := log.Append(ctx, stream, 2, events.Metadata{}, &events.NotificationSent{Attempt: 2}); err != nil {
		t.Fatal(err)
	}

	var plain wire.StreamExport
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "export", "--stream", stream, "--database-url", db.URL)), &plain); err != nil {
		t.Fatal(err)
	}
	if len(plain.Events) != 3 || len(plain.Proofs) != 0 || plain.Events[2].PreviousHash != plain.Events[1].Hash {
		t.Errorf("export: %+v; want 3 chained events and no proofs", plain)
	}
	var exp wire.StreamExport
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "export", "--stream", stream, "--proof", "--database-url", db.URL)), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.StreamID != stream || len(exp.Events) != 3 || len(exp.Proofs) != 2 || exp.Unsealed != 1 {
		t.Fatalf("export --proof: %d events, %d proofs, %d unsealed; want 3, 2, 1", len(exp.Events), len(exp.Proofs), exp.Unsealed)
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.json")
	b, _ := json.Marshal(exp.Proofs[1])
	if err := os.WriteFile(bundle, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRunHerald(t, "verify-bundle", bundle, "--public-key", pub); !strings.Contains(out, "version 2") {
		t.Errorf("verify-bundle of the exported bundle printed:\n%s", out)
	}

	// The export itself, as written, verifies offline: the chain, and every proof in it.
	exported := mustRunHerald(t, "events", "export", "--stream", stream, "--proof", "--database-url", db.URL)
	exportFile := filepath.Join(dir, "export.json")
	if err := os.WriteFile(exportFile, []byte(exported), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRunHerald(t, "verify-bundle", exportFile, "--public-key", pub, "--log-id", exp.Proofs[0].Checkpoint.LogID)
	if !strings.Contains(out, "Stream "+stream+": 2 events proven") || !strings.Contains(out, "1 events unsealed") {
		t.Errorf("verify-bundle of the export printed:\n%s", out)
	}
	if _, err := runHerald(t, "verify-bundle", exportFile, "--public-key", pub, "--log-id", uuid.NewString()); err == nil || !strings.Contains(err.Error(), "--log-id") {
		t.Errorf("verify-bundle of the export with another log id: %v, want it refused", err)
	}
	// A byte of any event changed, in any field its hash or its leaf covers, and the export
	// fails naming that event.
	for i, ev := range exp.Events {
		for _, field := range []string{"data", "hash", "previous_hash", "type", "position"} {
			if field == "previous_hash" && ev.Version == 1 {
				continue
			}
			if field == "position" && i >= len(exp.Proofs) {
				continue // nothing signed covers an unsealed event's place yet
			}
			var forged wire.StreamExport
			if err := json.Unmarshal([]byte(exported), &forged); err != nil {
				t.Fatal(err)
			}
			e := &forged.Events[i]
			switch field {
			case "data":
				e.Data = strings.Replace(e.Data, "attempt", "attempT", 1)
			case "hash":
				e.Hash = flipHex(e.Hash)
			case "previous_hash":
				e.PreviousHash = flipHex(e.PreviousHash)
			case "type":
				e.Type += "x"
			case "position":
				e.Position++
			}
			b, _ := json.Marshal(forged)
			if err := os.WriteFile(exportFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("stream %s version %d", stream, ev.Version)
			if _, err := runHerald(t, "verify-bundle", exportFile, "--public-key", pub); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("verify-bundle of the export with version %d's %s changed: %v, want %q named", ev.Version, field, err, want)
			}
		}
	}
	// A proof that is not of the event the export lists at its place is refused.
	var swapped wire.StreamExport
	if err := json.Unmarshal([]byte(exported), &swapped); err != nil {
		t.Fatal(err)
	}
	swapped.Proofs[0], swapped.Proofs[1] = swapped.Proofs[1], swapped.Proofs[0]
	b, _ = json.Marshal(swapped)
	if err := os.WriteFile(exportFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", exportFile, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "proofs[0]") {
		t.Errorf("verify-bundle of an export with its proofs swapped: %v, want proofs[0] named", err)
	}
	// An export without proofs has nothing signed in it.
	plainFile := filepath.Join(dir, "plain.json")
	b, _ = json.Marshal(plain)
	if err := os.WriteFile(plainFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", plainFile, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "no proof") {
		t.Errorf("verify-bundle of an export without proofs: %v, want it refused", err)
	}

	// The API's answer (wire.NotificationProof) verifies the same way.
	proofs, unsealed, err := ledger.ProveStream(ctx, db.Pool, stream)
	if err != nil {
		t.Fatal(err)
	}
	answer := filepath.Join(dir, "answer.json")
	b, _ = json.Marshal(wire.NewNotificationProof(stream, proofs, unsealed))
	if err := os.WriteFile(answer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRunHerald(t, "verify-bundle", answer, "--public-key", pub); !strings.Contains(out, "Stream "+stream+": 2 events proven") {
		t.Errorf("verify-bundle of the API's answer printed:\n%s", out)
	}
	var answered wire.NotificationProof
	_ = json.Unmarshal(b, &answered)
	answered.Proofs = answered.Proofs[1:] // version 2 alone: the chain does not start at 1
	b, _ = json.Marshal(answered)
	if err := os.WriteFile(answer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", answer, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("verify-bundle of an answer missing version 1: %v, want the version named", err)
	}

	// A bundle carries no frontier (nothing would check it): one added is refused, not ignored.
	var withFrontier map[string]any
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "prove", exp.Proofs[1].Event.ID, "--database-url", db.URL)), &withFrontier); err != nil {
		t.Fatal(err)
	}
	cp := withFrontier["checkpoint"].(map[string]any)
	if _, ok := cp["frontier"]; ok {
		t.Errorf("a bundle's checkpoint carries a frontier: %v", cp)
	}
	cp["frontier"] = []string{strings.Repeat("00", ledger.HashSize)}
	b, _ = json.Marshal(withFrontier)
	if err := os.WriteFile(bundle, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runHerald(t, "verify-bundle", bundle, "--public-key", pub); err == nil || !strings.Contains(err.Error(), "frontier") {
		t.Errorf("verify-bundle of a bundle with a frontier: %v, want the frontier named", err)
	}

	if _, err := runHerald(t, "events", "export", "--stream", uuid.NewString(), "--database-url", db.URL); err == nil || !strings.Contains(err.Error(), "no such stream") {
		t.Errorf("export of an unknown stream: %v", err)
	}
	for _, s := range []string{`ALTER TABLE event_log DISABLE TRIGGER event_log_no_update_delete`,
		`UPDATE event_log SET data = '{"attempt": 9}' WHERE stream_version = 3`,
		`ALTER TABLE event_log ENABLE TRIGGER event_log_no_update_delete`} {
		if _, err := db.Pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := runHerald(t, "events", "export", "--stream", stream, "--database-url", db.URL); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("export of a changed event: %v, want version 3 named", err)
	}
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	if s == "" {
		return s
	}
	c := byte('0')
	if s[0] == '0' {
		c = '1'
	}
	return string(c) + s[1:]
}

// A rotation of the checkpoint key, as an operator does it: the sealer with the new key B
// refuses the old key A's last checkpoint, writing nothing and saying to list A in
// HERALD_CHECKPOINT_PREVIOUS_KEYS; with A listed it goes on with B. verify with both public keys
// passes and says which signed which checkpoints; with B alone it names checkpoint 1 and A's
// key id. A bundle proved after the rotation verifies with B, and not with A alone.
func TestCheckpointKeyRotation(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	pubA, err := ledger.GenerateKeyFile(keyA)
	if err != nil {
		t.Fatal(err)
	}
	pubB, err := ledger.GenerateKeyFile(keyB)
	if err != nil {
		t.Fatal(err)
	}
	idA, idB := ledger.KeyID(pubA), ledger.KeyID(pubB)
	log := events.NewLog(db.Pool)
	stream := uuid.NewString()
	var ids []string
	appendEvent := func() {
		t.Helper()
		recs, err := log.Append(ctx, stream, int64(len(ids)), events.Metadata{}, &events.NotificationProcessing{Attempt: len(ids) + 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, recs[0].ID)
		heraldtest.WaitLogVisible(t, db, len(ids))
	}
	checkpoints := func() []ledger.Checkpoint {
		t.Helper()
		cps, err := ledger.List(ctx, db.Pool, 0)
		if err != nil {
			t.Fatal(err)
		}
		return cps
	}
	projector := func(key string, env map[string]string) *heraldProcess {
		t.Helper()
		all := map[string]string{"HERALD_DATABASE_URL": db.RuntimeURL, "HERALD_CHECKPOINT_KEY": key, "HERALD_CHECKPOINT_INTERVAL": "100ms"}
		maps.Copy(all, env)
		return spawnHerald(t, all, "projector")
	}
	stop := func(h *heraldProcess) string {
		t.Helper()
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		if !h.wait(30 * time.Second) {
			t.Errorf("the projector did not stop within 30s:\n%s", h.output())
		}
		return h.output()
	}
	// No line of any process may hold a private key: the PEM's body, or the key in base64.
	noPrivateKey := func(out string) {
		t.Helper()
		for _, file := range []string{keyA, keyB} {
			priv, err := ledger.ReadPrivateKey(file)
			if err != nil {
				t.Fatal(err)
			}
			pem, _ := os.ReadFile(file)
			body := strings.Split(strings.TrimSpace(string(pem)), "\n")[1]
			if strings.Contains(out, body) || strings.Contains(out, ledger.EncodePublicKey(ed25519.PublicKey(priv))) {
				t.Errorf("the private key of %s was printed:\n%s", file, out)
			}
		}
	}

	appendEvent()
	h := projector(keyA, nil)
	heraldtest.Eventually(t, 30*time.Second, "checkpoint 1, signed by A", func() (bool, error) {
		return len(checkpoints()) == 1, nil
	})
	noPrivateKey(stop(h))

	appendEvent()
	h = projector(keyB, nil)
	heraldtest.Eventually(t, 30*time.Second, "the sealer with B to refuse A's checkpoint", func() (bool, error) {
		return strings.Contains(h.output(), "refuses to sign"), nil
	})
	out := stop(h)
	for _, want := range []string{"key_id=" + idB, "checkpoint 1 is signed by key " + idA, "HERALD_CHECKPOINT_PREVIOUS_KEYS"} {
		if !strings.Contains(out, want) {
			t.Errorf("the sealer with B, A not listed, did not say %q:\n%s", want, out)
		}
	}
	if cps := checkpoints(); len(cps) != 1 {
		t.Errorf("%d checkpoints after the sealer with B refused, want 1", len(cps))
	}
	noPrivateKey(out)

	h = projector(keyB, map[string]string{"HERALD_CHECKPOINT_PREVIOUS_KEYS": ledger.EncodePublicKey(pubA)})
	heraldtest.Eventually(t, 30*time.Second, "checkpoint 2, signed by B", func() (bool, error) {
		cps := checkpoints()
		return len(cps) == 2 && cps[1].KeyID == idB, nil
	})
	out = stop(h)
	if !strings.Contains(out, idA) || strings.Contains(out, "refuses") {
		t.Errorf("the sealer with B, A listed, did not name A's key id among its previous keys, or refused:\n%s", out)
	}
	noPrivateKey(out)

	a, b := ledger.EncodePublicKey(pubA), ledger.EncodePublicKey(pubB)
	out = mustRunHerald(t, "events", "verify", "--public-key", a, "--public-key", b, "--database-url", db.URL)
	if want := fmt.Sprintf("Signatures checked: key %s checkpoint 1, key %s 2.", idA, idB); !strings.Contains(out, want) {
		t.Errorf("verify with A and B printed:\n%s\nwant %q", out, want)
	}
	var v wire.Verification
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "verify", "--public-key", a, "--public-key", b, "--database-url", db.URL, "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	want := []wire.Signer{{KeyID: idA, FirstCheckpoint: 1, LastCheckpoint: 1}, {KeyID: idB, FirstCheckpoint: 2, LastCheckpoint: 2}}
	if diff := cmp.Diff(want, v.Signers); diff != "" || !v.OK {
		t.Errorf("verify -o json with A and B: ok %v; signers (-want +got):\n%s", v.OK, diff)
	}
	if _, err := runHerald(t, "events", "verify", "--public-key", b, "--database-url", db.URL); err == nil ||
		!strings.Contains(err.Error(), "checkpoint 1: signature") || !strings.Contains(err.Error(), idA) {
		t.Errorf("verify with B alone: %v; want checkpoint 1's signature named, by key %s", err, idA)
	}

	bundle := filepath.Join(dir, "proof.json")
	if err := os.WriteFile(bundle, []byte(mustRunHerald(t, "events", "prove", ids[1], "--database-url", db.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, keys := range [][]string{{"--public-key", b}, {"--public-key", a, "--public-key", b}} {
		if out := mustRunHerald(t, append([]string{"verify-bundle", bundle}, keys...)...); !strings.Contains(out, "signed by key "+idB) {
			t.Errorf("verify-bundle %v of a bundle proved after the rotation printed:\n%s", keys, out)
		}
	}
	if _, err := runHerald(t, "verify-bundle", bundle, "--public-key", a); err == nil || !strings.Contains(err.Error(), "signature") || !strings.Contains(err.Error(), idB) {
		t.Errorf("verify-bundle with A alone of a bundle signed by B: %v; want the signature refused, naming key %s", err, idB)
	}
}

// events verify --key-until holds a key to the checkpoints up to a seq: a log rotated from A to
// B verifies with A's range ending at its last checkpoint, and with a range on the wrong side
// fails naming the checkpoint; a checkpoint signed later with the leaked key A verifies without
// the range and fails with it, naming its seq, A's key id and the flag, also from a checkpoint.
func TestVerifyKeyUntil(t *testing.T) {
	clearHeraldEnv(t)
	db := heraldtest.NewDatabase(t)
	ctx := t.Context()
	dir := t.TempDir()
	keyFileA, keyFileB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	pubA, err := ledger.GenerateKeyFile(keyFileA)
	if err != nil {
		t.Fatal(err)
	}
	pubB, err := ledger.GenerateKeyFile(keyFileB)
	if err != nil {
		t.Fatal(err)
	}
	keyA, err := ledger.ReadPrivateKey(keyFileA)
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := ledger.ReadPrivateKey(keyFileB)
	if err != nil {
		t.Fatal(err)
	}
	idA, idB := ledger.KeyID(pubA), ledger.KeyID(pubB)
	a, b := ledger.EncodePublicKey(pubA), ledger.EncodePublicKey(pubB)
	log := events.NewLog(db.Pool)
	stream := uuid.NewString()
	var ids []string
	// seal appends an event and seals it as checkpoint seq with key, previous accepted.
	seal := func(key ed25519.PrivateKey, previous ed25519.PublicKey, seq int64) {
		t.Helper()
		recs, err := log.Append(ctx, stream, int64(len(ids)), events.Metadata{}, &events.NotificationProcessing{Attempt: len(ids) + 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, recs[0].ID)
		heraldtest.WaitLogVisible(t, db, len(ids))
		cp, _, err := ledger.NewSealer(db.Pool, key).WithPreviousKeys(ledger.NewKeys(previous)).Seal(ctx)
		if err != nil || cp == nil || cp.Seq != seq {
			t.Fatalf("seal checkpoint %d: %+v, %v", seq, cp, err)
		}
	}
	verify := func(args ...string) (string, error) {
		return runHerald(t, append([]string{"events", "verify", "--public-key", a, "--public-key", b, "--database-url", db.URL}, args...)...)
	}
	keyUntil := func(err error, seq int64, id string, until int64) bool {
		return err != nil && strings.Contains(err.Error(), fmt.Sprintf("checkpoint %d: key_until: signed by key %s", seq, id)) &&
			strings.Contains(err.Error(), fmt.Sprintf("--key-until %s=%d", id, until))
	}

	seal(keyA, pubA, 1)
	seal(keyA, pubA, 2) // A's last checkpoint
	seal(keyB, pubA, 3) // the rotation point
	seal(keyB, pubB, 4)

	out, err := verify("--key-until", idA+"=2")
	if err != nil {
		t.Fatalf("verify with A up to its last checkpoint: %v", err)
	}
	for _, want := range []string{fmt.Sprintf("Signatures checked: key %s checkpoints 1–2, key %s 3–4.", idA, idB),
		fmt.Sprintf("Keys held to their ranges (--key-until): key %s up to checkpoint 2.", idA)} {
		if !strings.Contains(out, want) {
			t.Errorf("verify with A up to 2 printed:\n%s\nwant %q", out, want)
		}
	}
	// The key as --public-key takes it: base64, or a file holding the private key.
	for _, key := range []string{a, keyFileA} {
		if _, err := verify("--key-until", key+"=3"); err != nil {
			t.Errorf("verify with A up to the rotation point, A given as %s: %v", filepath.Base(key), err)
		}
	}
	var v wire.Verification
	if err := json.Unmarshal([]byte(mustRunHerald(t, "events", "verify", "--public-key", a, "--public-key", b, "--database-url", db.URL,
		"--key-until", idB+"=9", "--key-until", idA+"=2", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if want := []wire.KeyRange{{KeyID: idA, UntilCheckpoint: 2}, {KeyID: idB, UntilCheckpoint: 9}}; !cmp.Equal(want, v.KeyUntil) || !v.OK {
		t.Errorf("verify -o json with ranges: ok %v, key_until %+v; want %+v", v.OK, v.KeyUntil, want)
	}
	// On the wrong side of a checkpoint: named.
	if _, err := verify("--key-until", idA+"=1"); !keyUntil(err, 2, idA, 1) {
		t.Errorf("verify with A up to 1: %v; want checkpoint 2 named, by key %s, with the flag", err, idA)
	}
	if _, err := verify("--key-until", idB+"=3"); !keyUntil(err, 4, idB, 3) {
		t.Errorf("verify with B up to 3: %v; want checkpoint 4 named, by key %s, with the flag", err, idB)
	}

	// The leaked key A signs checkpoint 5, B accepted as the key before it.
	seal(keyA, pubB, 5)
	out, err = verify()
	if err != nil || !strings.Contains(out, fmt.Sprintf("key %s 5.", idA)) {
		t.Errorf("verify without a range of A's checkpoint 5: %v\n%s", err, out)
	}
	for _, from := range []string{"0", "3", "5"} {
		if _, err := verify("--key-until", idA+"=2", "--from-checkpoint", from); !keyUntil(err, 5, idA, 2) {
			t.Errorf("verify --from-checkpoint %s with A up to 2 of A's checkpoint 5: %v; want checkpoint 5 named, by key %s, with the flag", from, err, idA)
		}
	}
	out, err = verify("--key-until", idA+"=2", "-o", "json")
	v = wire.Verification{}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || err == nil {
		t.Fatalf("verify -o json of A's checkpoint 5: %v, %v:\n%s", err, jerr, out)
	}
	if m := v.Mismatch; v.OK || m == nil || m.Field != "key_until" || m.Checkpoint != 5 || !strings.Contains(m.Reason, idA) ||
		!cmp.Equal(v.KeyUntil, []wire.KeyRange{{KeyID: idA, UntilCheckpoint: 2}}) {
		t.Errorf("verify -o json of A's checkpoint 5: %+v, mismatch %+v; want checkpoint 5's key_until named", v, v.Mismatch)
	}
}

// verify-bundle has no --key-until: a bundle carries its own checkpoint, whose seq is whatever
// its signer wrote, and offline there is nothing to hold that seq to, so a range would refuse
// only the forgeries that do not lie about their seq. The flag is refused as unknown, before
// the file is read, rather than taken as a protection it cannot give.
func TestVerifyBundleHasNoKeyUntil(t *testing.T) {
	clearHeraldEnv(t)
	pub, _, _ := ed25519.GenerateKey(nil)
	a, id := ledger.EncodePublicKey(pub), ledger.KeyID(pub)
	missing := filepath.Join(t.TempDir(), "no-such-bundle.json")
	_, err := runHerald(t, "verify-bundle", missing, "--public-key", a, "--key-until", id+"=2")
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --key-until") {
		t.Errorf("verify-bundle --key-until: %v; want the flag refused as unknown", err)
	}
}

// Bad events verify --key-until values are refused, naming the flag, before the database is
// read, and a private key given as KEY or SEQ is not repeated.
func TestKeyUntilRefusesBadValues(t *testing.T) {
	clearHeraldEnv(t)
	dir := t.TempDir()
	keyFileA := filepath.Join(dir, "a.key")
	pubA, err := ledger.GenerateKeyFile(keyFileA)
	if err != nil {
		t.Fatal(err)
	}
	pubC, _, _ := ed25519.GenerateKey(nil)
	privA, err := ledger.ReadPrivateKey(keyFileA)
	if err != nil {
		t.Fatal(err)
	}
	a, idA, idC := ledger.EncodePublicKey(pubA), ledger.KeyID(pubA), ledger.KeyID(pubC)
	privB64, privHex := ledger.EncodePublicKey(ed25519.PublicKey(privA)), fmt.Sprintf("%x", []byte(privA))
	pem, _ := os.ReadFile(keyFileA)
	pemBody := strings.Split(strings.TrimSpace(string(pem)), "\n")[1]
	for _, tt := range []struct {
		name   string
		values []string
		keys   []string
		want   string
	}{
		{"no SEQ", []string{idA}, []string{a}, "want KEY=SEQ"},
		{"SEQ 0", []string{idA + "=0"}, []string{a}, `SEQ "0"`},
		{"SEQ not a number", []string{idA + "=last"}, []string{a}, `SEQ "last"`},
		{"an unknown key", []string{idC + "=3"}, []string{a}, "key " + idC + " is not one given with --public-key"},
		{"no --public-key", []string{idA + "=3"}, nil, "none was given"},
		{"the same key twice", []string{idA + "=3", a + "=4"}, []string{a}, "key " + idA + " is given twice"},
		{"a private key as KEY", []string{privB64 + "=3"}, []string{a}, "KEY is not a key id"},
		{"a private key in hex as KEY", []string{privHex + "=3"}, []string{a}, "KEY is not a key id"},
		{"a private key as SEQ", []string{idA + "=" + privHex}, []string{a}, "SEQ: want"},
	} {
		var keyArgs []string
		for _, k := range tt.keys {
			keyArgs = append(keyArgs, "--public-key", k)
		}
		for _, v := range tt.values {
			keyArgs = append(keyArgs, "--key-until", v)
		}
		args := append([]string{"events", "verify", "--database-url", "postgres://nobody@127.0.0.1:1/none"}, keyArgs...)
		_, err := runHerald(t, args...)
		if err == nil || !strings.Contains(err.Error(), "--key-until: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("herald events verify with %s: %v; want --key-until named, saying %q", tt.name, err, tt.want)
			continue
		}
		for _, secret := range []string{privB64[:16], privHex[:16], pemBody[len(pemBody)-20:]} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("herald events verify with %s: %v repeats the private key", tt.name, err)
			}
		}
	}
}

// rotatedLog is a log sealed across a rotation from key A to key B: checkpoints 1 and 2 signed
// by A, 3 by B, one event of one stream each, every checkpoint also appended to the checkpoint
// file as the sealer appends it (HERALD_CHECKPOINT_FILE). bundle is the true bundle of event 1
// in A's checkpoint 2.
type rotatedLog struct {
	t         *testing.T
	db        *heraldtest.Database
	dir       string
	a, b      string // A's and B's public keys, as --public-key takes them
	keyA      ed25519.PrivateKey
	keyB      ed25519.PrivateKey
	pubA      ed25519.PublicKey
	stream    string
	ids       []string
	cps       []ledger.Checkpoint
	cpFile    string
	bundleTxt string
	bundle    string
}

func newRotatedLog(t *testing.T) *rotatedLog {
	t.Helper()
	clearHeraldEnv(t)
	l := &rotatedLog{t: t, db: heraldtest.NewDatabase(t), dir: t.TempDir(), stream: uuid.NewString()}
	ctx := t.Context()
	pubA, keyA, _ := ed25519.GenerateKey(nil)
	pubB, keyB, _ := ed25519.GenerateKey(nil)
	l.a, l.b, l.keyA, l.keyB, l.pubA = ledger.EncodePublicKey(pubA), ledger.EncodePublicKey(pubB), keyA, keyB, pubA
	l.cpFile = filepath.Join(l.dir, "checkpoints.jsonl")
	l.seal(keyA, 1)
	l.seal(keyA, 2) // A's last checkpoint
	l.seal(keyB, 3) // the rotation point
	var err error
	if l.cps, err = ledger.List(ctx, l.db.Pool, 0); err != nil || len(l.cps) != 3 {
		t.Fatalf("checkpoints: %d, %v", len(l.cps), err)
	}
	l.bundleTxt = mustRunHerald(t, "events", "prove", l.ids[0], "--checkpoint", "2", "--database-url", l.db.URL)
	l.bundle = l.write("proof-2.json", l.bundleTxt)
	return l
}

// seal appends an event to the stream and seals checkpoint seq over it with key (A being its
// previous key), and appends the checkpoint to the checkpoint file, as the sealer does once it is
// committed.
func (l *rotatedLog) seal(key ed25519.PrivateKey, seq int64) {
	l.t.Helper()
	ctx := l.t.Context()
	recs, err := events.NewLog(l.db.Pool).Append(ctx, l.stream, int64(len(l.ids)), events.Metadata{}, &events.NotificationProcessing{Attempt: len(l.ids) + 1})
	if err != nil {
		l.t.Fatal(err)
	}
	l.ids = append(l.ids, recs[0].ID)
	heraldtest.WaitLogVisible(l.t, l.db, len(l.ids))
	cp, _, err := ledger.NewSealer(l.db.Pool, key).WithPreviousKeys(ledger.NewKeys(l.pubA)).Seal(ctx)
	if err != nil || cp == nil || cp.Seq != seq {
		l.t.Fatalf("seal checkpoint %d: %+v, %v", seq, cp, err)
	}
	if err := appendCheckpoint(l.cpFile, *cp); err != nil {
		l.t.Fatal(err)
	}
}

// expect is checkpoint seq's SEQ:ROOT, as --expect takes it.
func (l *rotatedLog) expect(seq int64) string { return fmt.Sprintf("%d:%x", seq, l.cps[seq-1].Root[:]) }

func (l *rotatedLog) write(name, body string) string {
	l.t.Helper()
	file := filepath.Join(l.dir, name)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return file
}

// verifyBundle runs verify-bundle on file with A's and B's public keys.
func (l *rotatedLog) verifyBundle(file string, args ...string) (string, error) {
	return runHerald(l.t, append([]string{"verify-bundle", file, "--public-key", l.a, "--public-key", l.b}, args...)...)
}

// forge writes a bundle signed offline with the leaked A: event 1 with other data, alone in a
// tree of one leaf, in a checkpoint labelled seq.
func (l *rotatedLog) forge(seq int64) string {
	l.t.Helper()
	var pb wire.ProofBundle
	if err := json.Unmarshal([]byte(l.bundleTxt), &pb); err != nil {
		l.t.Fatal(err)
	}
	p, err := pb.Proof()
	if err != nil {
		l.t.Fatal(err)
	}
	data := strings.Replace(string(p.Event.Data), `"attempt": 1`, `"attempt": 99`, 1)
	if data == string(p.Event.Data) {
		l.t.Fatalf("event 1's data %s holds no attempt 1", p.Event.Data)
	}
	p.Event.Data = []byte(data)
	p.Hash = ledger.EventHash(ledger.Genesis, &p.Event)
	p.LeafIndex, p.Path = 0, nil
	p.Checkpoint.Seq, p.Checkpoint.TreeSize = seq, 1
	p.Checkpoint.Root = ledger.LeafHash(p.TransactionID, p.Position, p.Hash)
	p.Checkpoint.Sign(l.keyA)
	b, err := json.Marshal(wire.NewProofBundle(p))
	if err != nil {
		l.t.Fatal(err)
	}
	return l.write(fmt.Sprintf("forged-%d.json", seq), string(b))
}

// After a rotation from A to B, a bundle the leaked key A signs offline — a forged event in a
// checkpoint labelled with one of A's own seqs — verifies with A's public key: nothing offline
// bounds its seq. verify-bundle --expect SEQ:ROOT pins A's checkpoint to the copy kept from
// before the rotation: the true bundle of it is accepted; the forgery, one of another seq, and
// an export whose checkpoint was not given are refused, naming the checkpoint, the field and
// what differs; bad values are refused before the file is read.
func TestVerifyBundleExpect(t *testing.T) {
	l := newRotatedLog(t)
	witness := func(err error, shape string, seq int64, says string) bool {
		return err != nil && strings.Contains(err.Error(), fmt.Sprintf("the %s does not verify: --expect: checkpoint %d: witness: %s", shape, seq, says))
	}

	// The true bundle of event 1 in A's checkpoint 2: as expected, among others too.
	for _, args := range [][]string{{"--expect", l.expect(2)}, {"--expect", l.expect(1), "--expect", l.expect(2)}} {
		out, err := l.verifyBundle(l.bundle, args...)
		if err != nil || !strings.Contains(out, "checkpoint 2 of log") || !strings.Contains(out, "Checkpoint 2 is as expected (--expect)") {
			t.Errorf("verify-bundle %v of A's checkpoint 2: %v\n%s", args, err, out)
		}
	}

	// A forgery signed offline with A, in a checkpoint labelled 2. Without --expect it
	// verifies; with it, its root is named.
	forged := l.forge(2)
	if out, err := l.verifyBundle(forged); err != nil || !strings.Contains(out, "leaf 0 of the 1 events checkpoint 2") {
		t.Fatalf("verify-bundle without --expect of a checkpoint 2 forged with A: %v\n%s; want it accepted, as nothing offline bounds it", err, out)
	}
	if _, err := l.verifyBundle(forged, "--expect", l.expect(2)); !witness(err, "bundle", 2, "its root ") || !strings.Contains(err.Error(), fmt.Sprintf("is not the witnessed %x", l.cps[1].Root[:])) {
		t.Errorf("verify-bundle --expect %s of a checkpoint 2 forged with A: %v; want its root named against the expected one", l.expect(2), err)
	}
	if _, err := l.verifyBundle(l.forge(9), "--expect", l.expect(1), "--expect", l.expect(2)); !witness(err, "bundle", 9, "its seq is not a witnessed one (witnessed: 1, 2)") {
		t.Errorf("verify-bundle --expect of a checkpoint 9 forged with A: %v; want its seq named", err)
	}

	// An export proved against B's checkpoint 3: as expected with 3, refused with only 2.
	export := l.write("export.json", mustRunHerald(t, "events", "export", "--stream", l.stream, "--proof", "--database-url", l.db.URL))
	if out, err := l.verifyBundle(export, "--expect", l.expect(3)); err != nil || !strings.Contains(out, "3 events proven") || !strings.Contains(out, "Every checkpoint is as expected (--expect)") {
		t.Errorf("verify-bundle --expect %s of the export: %v\n%s", l.expect(3), err, out)
	}
	if _, err := l.verifyBundle(export, "--expect", l.expect(2)); !witness(err, "export", 3, "its seq is not a witnessed one (witnessed: 2)") {
		t.Errorf("verify-bundle --expect %s of the export against checkpoint 3: %v; want checkpoint 3's seq named", l.expect(2), err)
	}

	// Bad values: refused, naming the flag and the value, before the file is read.
	missing := filepath.Join(l.dir, "no-such-bundle.json")
	root := fmt.Sprintf("%x", l.cps[1].Root[:])
	for _, tt := range []struct{ value, want string }{
		{"2", "want SEQ:ROOT"},
		{"0:" + root, `seq "0"`},
		{"two:" + root, `seq "two"`},
		{"2:zz", `root "zz"`},
		{"2:" + root[:32], "want 32 bytes in hex"},
	} {
		_, err := l.verifyBundle(missing, "--expect", l.expect(1), "--expect", tt.value)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("--expect %q: ", tt.value)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("verify-bundle --expect %q: %v; want the flag and value named, saying %q", tt.value, err, tt.want)
		}
	}
}

// verify-bundle --witness holds every checkpoint of the file to the checkpoint file the sealer
// kept, by the same check as --expect: after a rotation from A to B, the bundle forged offline
// with the leaked A is refused, naming the checkpoint and its root or seq; the true bundle and
// the export are accepted; a witness that lacks the file's checkpoint (a receiver that missed
// it, a copy from before the rotation, another log's) refuses it.
func TestVerifyBundleWitness(t *testing.T) {
	l := newRotatedLog(t)
	export := l.write("export.json", mustRunHerald(t, "events", "export", "--stream", l.stream, "--proof", "--database-url", l.db.URL))
	refused := func(err error, shape, flags string, seq int64, says string) bool {
		return err != nil && strings.Contains(err.Error(), fmt.Sprintf("the %s does not verify: %s: checkpoint %d: witness: %s", shape, flags, seq, says))
	}
	lines := strings.SplitAfter(strings.TrimSpace(readFile(t, l.cpFile)), "\n")
	if len(lines) != 3 {
		t.Fatalf("the checkpoint file holds %d lines, want 3:\n%s", len(lines), readFile(t, l.cpFile))
	}

	// The true bundle of A's checkpoint 2, and the export against B's 3: in the file.
	out, err := l.verifyBundle(l.bundle, "--witness", l.cpFile)
	if err != nil || !strings.Contains(out, "checkpoint 2 of log") || !strings.Contains(out, fmt.Sprintf("Checkpoint 2 is as witnessed (--witness %s)", l.cpFile)) {
		t.Errorf("verify-bundle --witness of A's checkpoint 2: %v\n%s", err, out)
	}
	out, err = l.verifyBundle(export, "--witness", l.cpFile)
	if err != nil || !strings.Contains(out, "3 events proven") || !strings.Contains(out, fmt.Sprintf("Every checkpoint is as witnessed (--witness %s)", l.cpFile)) {
		t.Errorf("verify-bundle --witness of the export: %v\n%s", err, out)
	}

	// The forgery in a checkpoint labelled 2: its root is not the file's checkpoint 2's. One
	// labelled with a seq the file never had: named, with the seqs it has.
	flags := "--witness " + l.cpFile
	if _, err := l.verifyBundle(l.forge(2), "--witness", l.cpFile); !refused(err, "bundle", flags, 2, "its root ") ||
		!strings.Contains(err.Error(), fmt.Sprintf("is not the witnessed %x", l.cps[1].Root[:])) {
		t.Errorf("verify-bundle --witness of a checkpoint 2 forged with A: %v; want its root named against the file's", err)
	}
	if _, err := l.verifyBundle(l.forge(9), "--witness", l.cpFile); !refused(err, "bundle", flags, 9, "its seq is not a witnessed one (witnessed: 1–3)") {
		t.Errorf("verify-bundle --witness of a checkpoint 9 forged with A: %v; want its seq named", err)
	}

	// Witnesses that lack the file's checkpoint: a receiver that missed checkpoint 2, a copy
	// made before the rotation, and checkpoint 2 of another log (its seq and root, not its log
	// id). With --expect besides, a checkpoint may be either's.
	missed := l.write("missed-2.jsonl", lines[0]+lines[2])
	flags = "--witness " + missed
	if _, err := l.verifyBundle(l.bundle, "--witness", missed); !refused(err, "bundle", flags, 2, "its seq is not a witnessed one (witnessed: 1, 3)") {
		t.Errorf("verify-bundle --witness without checkpoint 2 of the bundle of checkpoint 2: %v; want its seq named", err)
	}
	if out, err := l.verifyBundle(l.bundle, "--witness", missed, "--expect", l.expect(2)); err != nil ||
		!strings.Contains(out, fmt.Sprintf("Checkpoint 2 is as witnessed (--witness %s, --expect)", missed)) {
		t.Errorf("verify-bundle --witness without checkpoint 2 --expect %s: %v\n%s", l.expect(2), err, out)
	}
	if _, err := l.verifyBundle(l.forge(2), "--witness", missed, "--expect", l.expect(2)); !refused(err, "bundle", flags+", --expect", 2, "its root ") {
		t.Errorf("verify-bundle --witness --expect of a checkpoint 2 forged with A: %v; want its root named", err)
	}
	before := l.write("before-rotation.jsonl", lines[0]+lines[1])
	if _, err := l.verifyBundle(export, "--witness", before); !refused(err, "export", "--witness "+before, 3, "its seq is not a witnessed one (witnessed: 1, 2)") {
		t.Errorf("verify-bundle --witness from before the rotation of the export against checkpoint 3: %v; want its seq named", err)
	}
	// Another log's checkpoint 2, signed by A as the sealer of that log would have.
	var w wire.Checkpoint
	if err := json.Unmarshal([]byte(lines[1]), &w); err != nil {
		t.Fatal(err)
	}
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	logID := w.LogID
	cp.LogID = uuid.New()
	cp.Sign(l.keyA)
	w = wire.NewCheckpoint(cp)
	otherLog := l.write("other-log.jsonl", lines[0]+mustJSON(t, w)+"\n"+lines[2])
	if _, err := l.verifyBundle(l.bundle, "--witness", otherLog); !refused(err, "bundle", "--witness "+otherLog, 2, fmt.Sprintf("it is of log %s, not the witnessed %s", logID, w.LogID)) {
		t.Errorf("verify-bundle --witness of another log's checkpoint 2: %v; want the logs named", err)
	}
}

// A witness file that cannot be read or holds no checkpoint is refused before the bundle is read
// (here there is none), and one with a line that is not a checkpoint before the bundle is
// checked, naming the file and the line; never what it holds, nor a value that looks like a key
// rather than a file name. A forged bundle checked against such a file is refused, not let
// through unwitnessed.
func TestVerifyBundleRefusesBadWitness(t *testing.T) {
	l := newRotatedLog(t)
	line := readFile(t, l.cpFile)[:strings.Index(readFile(t, l.cpFile), "\n")+1]
	pemFile := filepath.Join(l.dir, "checkpoint.key")
	if _, err := ledger.GenerateKeyFile(pemFile); err != nil {
		t.Fatal(err)
	}
	pemBody := strings.Split(strings.TrimSpace(readFile(t, pemFile)), "\n")[1]
	_, priv, _ := ed25519.GenerateKey(nil)
	privText := base64.StdEncoding.EncodeToString(priv)
	noSuch := filepath.Join(l.dir, "no-such.jsonl")
	// A file name as /tmp/… gives one, which also reads as base64: named all the same.
	likeBase64 := l.dir + "/witness"
	for len(likeBase64) < 64 || len(likeBase64)%4 != 0 {
		likeBase64 += "x"
	}
	if !ledger.LooksLikeKeyMaterial(likeBase64) {
		t.Fatalf("%s does not read as base64", likeBase64)
	}
	missing := filepath.Join(l.dir, "no-such-bundle.json")
	for _, tt := range []struct {
		name, file string
		want       []string
		secret     string
		// opened: refused when the file is opened, before the bundle is read; otherwise once
		// its lines are, after the bundle is read.
		opened bool
	}{
		{"missing", noSuch, []string{"--witness: open " + noSuch + ": no such file or directory"}, "", true},
		{"missing, named like base64", likeBase64, []string{"--witness: open " + likeBase64 + ": no such file or directory"}, "", true},
		{"a directory", l.dir, []string{"--witness: read " + l.dir + ": is a directory"}, "", true},
		{"empty", l.write("empty.jsonl", "\n\n"), []string{"--witness: " + filepath.Join(l.dir, "empty.jsonl") + " holds no checkpoint"}, "", true},
		{"not JSON", l.write("garbage.jsonl", line+"seq 2 root aa\n"), []string{"--witness: " + filepath.Join(l.dir, "garbage.jsonl") + " line 2: not a checkpoint as JSON"}, "", false},
		{"a payload, not its data", l.write("payload.jsonl", `{"type":"checkpoint.signed","data":`+strings.TrimSpace(line)+"}\n"),
			[]string{"--witness: " + filepath.Join(l.dir, "payload.jsonl") + " line 1: seq 0"}, "", false},
		{"a bad root", l.write("root.jsonl", strings.Replace(line, `"root":"`, `"root":"zz`, 1)),
			[]string{"--witness: " + filepath.Join(l.dir, "root.jsonl") + " line 1: root: "}, "", false},
		{"a line too long", l.write("long.jsonl", line+strings.Repeat(" ", checkpointLineMax)+line),
			[]string{"--witness: " + filepath.Join(l.dir, "long.jsonl") + " line 2: longer than "}, "", false},
		{"a private key file", pemFile, []string{"--witness: " + pemFile + " line 1: not a checkpoint as JSON"}, pemBody, false},
		{"a private key", privText, []string{"--witness: not a checkpoint file that can be read (no such file or directory)", "it looks like a key"}, privText, true},
	} {
		for _, bundle := range []string{missing, l.forge(2)} {
			if bundle == missing && !tt.opened {
				continue // the bundle's own error comes first
			}
			out, err := l.verifyBundle(bundle, "--witness", tt.file)
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("verify-bundle %s --witness %s: %v; want %q", filepath.Base(bundle), tt.name, err, want)
				}
			}
			if !strings.HasPrefix(msg, "--witness: ") {
				t.Errorf("verify-bundle %s --witness %s: %v; want the witness refused before the bundle is read", filepath.Base(bundle), tt.name, err)
			}
			if tt.secret != "" && strings.Contains(msg+out, tt.secret) {
				t.Errorf("verify-bundle --witness %s repeated the key: %v\n%s", tt.name, err, out)
			}
		}
	}
	// events verify reads --witness the same way.
	if _, err := runHerald(t, "events", "verify", "--witness", privText, "--database-url", l.db.URL); err == nil ||
		!strings.Contains(err.Error(), "it looks like a key") || strings.Contains(err.Error(), privText) {
		t.Errorf("events verify --witness with a private key: %v; want it refused without repeating the key", err)
	}
}

func readFile(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
