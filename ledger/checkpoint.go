package ledger

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Checkpoint commits to the log up to a point in the order its consumers read it
// ((transaction_id, global_position)): the root of the Merkle tree over the TreeSize first events
// in that order, the last of which is (LastTransactionID, LastPosition), signed with Ed25519.
type Checkpoint struct {
	// LogID is the log's identity (the one row of log_identity): signed, so that a checkpoint
	// of one log never verifies as another's.
	LogID             [16]byte
	Seq               int64
	TreeSize          int64
	LastTransactionID uint64
	LastPosition      int64
	Root              Hash
	// Frontier lets a verifier or the next checkpoint go on from this one without reading the
	// events before it (Tree.Frontier).
	Frontier  []byte
	KeyID     string
	Signature []byte
	CreatedAt time.Time
}

// checkpointDomain opens every signed message, so that a checkpoint's signature can never be
// taken for the signature of anything else.
const checkpointDomain = "herald checkpoint v1\x00"

// SignedMessage is what a checkpoint's signature covers: a domain string, the log id (16
// bytes), then seq, tree size, last transaction id, last position (8 bytes each, big-endian),
// the root, and the time in microseconds since the Unix epoch (8 bytes, big-endian). The
// frontier is not signed: it is checked against the signed root by whoever starts from it.
func (c *Checkpoint) SignedMessage() []byte {
	b := make([]byte, 0, len(checkpointDomain)+16+4*8+HashSize+8)
	b = append(b, checkpointDomain...)
	b = append(b, c.LogID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(c.TreeSize))
	b = binary.BigEndian.AppendUint64(b, c.LastTransactionID)
	b = binary.BigEndian.AppendUint64(b, uint64(c.LastPosition))
	b = append(b, c.Root[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.CreatedAt.UnixMicro()))
	return b
}

// Sign signs c with key, setting its key id and signature.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	c.Signature = ed25519.Sign(key, c.SignedMessage())
}

// VerifySignature says whether c is signed by the key its key id names among keys. A
// checkpoint signed by a key not among them does not verify, whatever its signature.
func (c *Checkpoint) VerifySignature(keys Keys) error {
	pub, ok := keys[c.KeyID]
	// A key filed under another key's id (Keys built by hand) must not lend it its signatures.
	ok = ok && KeyID(pub) == c.KeyID
	switch {
	case len(keys) == 0:
		return errors.New("no public key to check its signature against")
	case !ok && len(keys) == 1:
		return fmt.Errorf("signed by %s, not by the trusted key %s", shownKeyID(c.KeyID), keys.IDs()[0])
	case !ok:
		return fmt.Errorf("signed by %s, not by any of the trusted keys %s", shownKeyID(c.KeyID), strings.Join(keys.IDs(), ", "))
	case !ed25519.Verify(pub, c.SignedMessage(), c.Signature):
		return errors.New("the signature does not match the checkpoint")
	}
	return nil
}

// CheckSigned refuses cp unless it is signed by the key of keys its key id names, within that
// key's range in until (nil: every key for every checkpoint): a *Mismatch of field signature or
// key_until naming cp's seq. Verify holds each checkpoint of the log to it, and a witness's
// copies are held to it before they are relied on.
func CheckSigned(cp *Checkpoint, keys Keys, until KeyRanges) error {
	if err := cp.VerifySignature(keys); err != nil {
		return &Mismatch{Checkpoint: cp.Seq, Field: "signature", Reason: err.Error()}
	}
	return until.Check(cp)
}

// Keys are the public keys checkpoints may be signed with, by key id (KeyID): a checkpoint's
// signature is checked with the key its key id names. More than one is a rotation's: the old
// key signed the checkpoints before it, the new one those after.
type Keys map[string]ed25519.PublicKey

// NewKeys returns pubs by key id.
func NewKeys(pubs ...ed25519.PublicKey) Keys {
	k := make(Keys, len(pubs))
	for _, pub := range pubs {
		k[KeyID(pub)] = pub
	}
	return k
}

// With returns the keys of k and of other.
func (k Keys) With(other Keys) Keys {
	out := make(Keys, len(k)+len(other))
	maps.Copy(out, k)
	maps.Copy(out, other)
	return out
}

// IDs returns the key ids, sorted.
func (k Keys) IDs() []string { return slices.Sorted(maps.Keys(k)) }

// KeyRanges say how far each key is trusted, by key id: the seq of the last checkpoint it may
// sign. A key not in it is trusted for every checkpoint. After a rotation the old key's range
// ends at its last checkpoint, so that one it signs later — as whoever holds it could, were it
// leaked — is refused (Check) rather than verified.
type KeyRanges map[string]int64

// ParseKeyRanges reads values of the form KEY=SEQ (--key-until): KEY is one of keys, named by
// its key id (KeyID) or given as ParsePublicKey reads it; SEQ is the seq of the last checkpoint
// it is trusted for, 1 or more. A malformed value, a key not among keys and a key named twice
// are refused. No error repeats a value, save a key id or a short SEQ: a value may be key
// material, such as a private key given by mistake.
func ParseKeyRanges(values []string, keys Keys) (KeyRanges, error) {
	r := make(KeyRanges, len(values))
	for _, v := range values {
		// The last '=': a base64 key ends in its padding.
		i := strings.LastIndexByte(v, '=')
		if i < 0 || strings.TrimSpace(v[i+1:]) == "" {
			return nil, errors.New("want KEY=SEQ: a key given with --public-key (its key id, or the key) and the seq of the last checkpoint it may sign")
		}
		seqText := strings.TrimSpace(v[i+1:])
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if err != nil || seq < 1 {
			if len(seqText) > maxShownSeq {
				return nil, errors.New("SEQ: want the seq of the last checkpoint the key may sign, 1 or more")
			}
			return nil, fmt.Errorf("SEQ %q: want the seq of the last checkpoint the key may sign, 1 or more", seqText)
		}
		id, err := keys.idOf(strings.TrimSpace(v[:i]))
		if err != nil {
			return nil, err
		}
		if _, twice := r[id]; twice {
			return nil, fmt.Errorf("key %s is given twice", id)
		}
		r[id] = seq
	}
	return r, nil
}

// maxShownSeq is the longest SEQ an error repeats: an int64 has at most 19 digits and a sign,
// and no key is that short in any encoding.
const maxShownSeq = 20

// idOf returns the id of the key of k that s names: its key id, or the key itself.
func (k Keys) idOf(s string) (string, error) {
	var id string
	if b, err := hex.DecodeString(s); err == nil && len(b) == keyIDSize {
		id = strings.ToLower(s)
	} else {
		pub, err := ParsePublicKey(s)
		if err != nil {
			return "", fmt.Errorf("KEY is not a key id (%d hex digits, as verify and checkpoints list print it), and %w", 2*keyIDSize, err)
		}
		id = KeyID(pub)
	}
	if _, ok := k[id]; !ok {
		given := "none was given"
		if len(k) > 0 {
			given = "given: " + strings.Join(k.IDs(), ", ")
		}
		return "", fmt.Errorf("key %s is not one given with --public-key (%s)", id, given)
	}
	return id, nil
}

// IDs returns the key ids, in the order their ranges end (by id when two end together).
func (r KeyRanges) IDs() []string {
	return slices.SortedFunc(maps.Keys(r), func(a, b string) int {
		if c := cmp.Compare(r[a], r[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

// among refuses ranges of keys not among keys: with no signature checked against its key, a
// range would be reported as held while it held nothing.
func (r KeyRanges) among(keys Keys) error {
	for _, id := range r.IDs() {
		if _, ok := keys[id]; ok {
			continue
		}
		if len(keys) == 0 {
			return fmt.Errorf("key %s is held to a range, but no key is given to check signatures with", id)
		}
		return fmt.Errorf("key %s is held to a range, but is not among the keys given (%s)", id, strings.Join(keys.IDs(), ", "))
	}
	return nil
}

// Check refuses cp if the key it names is trusted only up to an earlier checkpoint: a
// *Mismatch of field key_until, naming cp's seq and key id.
func (r KeyRanges) Check(cp *Checkpoint) error {
	if until, ok := r[cp.KeyID]; ok && cp.Seq > until {
		return &Mismatch{Checkpoint: cp.Seq, Field: "key_until", Reason: fmt.Sprintf(
			"signed by key %s, which is trusted up to checkpoint %d only (--key-until %s=%d)", cp.KeyID, until, cp.KeyID, until)}
	}
	return nil
}

// keyIDSize is how many bytes of a public key's SHA-256 its key id is.
const keyIDSize = 8

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:keyIDSize])
}

// shownKeyID is how an error names the key a checkpoint says it was signed by: "key ID" when
// id is a key id (KeyID: 16 hex digits), and otherwise only that it is not one, and how long it
// is. A checkpoint read from a file or a bundle carries whatever its writer put in key_id — a
// megabyte, control characters, a private key pasted by mistake — and an error must not repeat
// that.
func shownKeyID(id string) string {
	if len(id) == 2*keyIDSize && strings.Trim(id, "0123456789abcdefABCDEF") == "" {
		return "key " + id
	}
	return fmt.Sprintf("a key_id that is no key id (%d bytes, not %d hex digits)", len(id), 2*keyIDSize)
}

// GenerateKeyFile writes a new Ed25519 private key to path, as PEM-encoded PKCS #8 readable by
// its owner only, and returns its public key. An existing file is never overwritten.
func GenerateKeyFile(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("generate a key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode the key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write the key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write the key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write the key: %w", err)
	}
	return pub, nil
}

// ReadPrivateKey reads the Ed25519 private key GenerateKeyFile wrote to path (PEM, PKCS #8; an
// OpenSSL `genpkey -algorithm ed25519` key is the same).
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the checkpoint key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read the checkpoint key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read the checkpoint key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("read the checkpoint key %s: a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

// EncodePublicKey is how Herald prints a public key: its 32 bytes in standard base64.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads a public key given as s: its 32 bytes in base64 (EncodePublicKey) or
// hex, or the path of a file holding that, or a PEM PUBLIC KEY, or the private key itself.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	if pub, ok := decodePublicKey(s); ok {
		return pub, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		// The reason the file could not be read, without the path: the path is the value.
		reason := err
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			reason = pe.Err
		}
		if LooksLikeKeyMaterial(s) {
			// Not repeated: it may be a private key given where its public key belongs.
			return nil, fmt.Errorf("neither a public key (32 bytes in base64 or hex) nor a file that can be read (%v)", reason)
		}
		return nil, fmt.Errorf("%q is neither a public key (32 bytes in base64 or hex) nor a file that can be read (%v)", s, reason)
	}
	if pub, ok := decodePublicKey(string(b)); ok {
		return pub, nil
	}
	block, _ := pem.Decode(b)
	switch {
	case block != nil && block.Type == "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if pub, ok := k.(ed25519.PublicKey); err == nil && ok {
			return pub, nil
		}
	case block != nil && block.Type == "PRIVATE KEY":
		priv, err := ReadPrivateKey(s)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("%s holds no Ed25519 public key (32 bytes in base64 or hex, or PEM)", s)
}

// LooksLikeKeyMaterial says whether s, given where a public key or a file name belongs, holds
// PEM or decodes, in any base64 alphabet or as hex, to as many bytes as a key: key material,
// such as a private key given by mistake, rather than a file name. An error must not repeat it.
func LooksLikeKeyMaterial(s string) bool {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "-----BEGIN") {
		return true
	}
	decoders := []func(string) ([]byte, error){base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString}
	for _, dec := range decoders {
		for _, v := range []string{s, strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")} {
			if b, err := dec(v); err == nil && len(b) >= ed25519.PublicKeySize {
				return true
			}
		}
	}
	return false
}

func decodePublicKey(s string) (ed25519.PublicKey, bool) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, hex.DecodeString} {
		if b, err := dec(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), true
		}
	}
	return nil, false
}
