package e2e_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"testing"
)

// TestAttachmentEndToEnd: an email with HTML and a binary attachment larger than the API's
// default body limit leaves Herald as multipart/mixed around the text and HTML alternative, the
// file's bytes intact under its name and type; the log names the file by its SHA-256 and holds
// none of its bytes.
func TestAttachmentEndToEnd(t *testing.T) {
	c := startHerald(t, heraldOpts{Commands: []string{"all"}})
	file := bytes.Repeat([]byte{'%', 'P', 'D', 'F', 0, 0xff, '\r', '\n', 0x80}, 40<<10) // 360 KiB
	sum := sha256.Sum256(file)
	id := send(t, c.API, sendRequest{Type: "email", Recipient: "ada@example.net", Subject: "Your invoice",
		Content: "Your invoice is attached.", HTML: "<p>Your invoice is <b>attached</b>.</p>",
		Attachments: []map[string]string{{"filename": "invoice.pdf", "content_type": "application/pdf",
			"content": base64.StdEncoding.EncodeToString(file)}}})
	waitStatus(t, c.API, id, "sent", deliveryTimeout)

	got := c.SMTP.Received("ada@example.net")
	if len(got) != 1 || got[0].NotificationID != id {
		t.Fatalf("the sink received %d messages for ada, want one of %s", len(got), id)
	}
	msg := got[0]
	if mediaType, _, err := mime.ParseMediaType(msg.Header.Get("Content-Type")); err != nil || mediaType != "multipart/mixed" {
		t.Fatalf("Content-Type = %q, want multipart/mixed", msg.Header.Get("Content-Type"))
	}
	if len(msg.Parts) != 3 {
		t.Fatalf("%d parts, want text, HTML and the file", len(msg.Parts))
	}
	if msg.Parts[0].MediaType != "text/plain" || msg.Parts[0].Body != "Your invoice is attached." ||
		msg.Parts[1].MediaType != "text/html" || msg.Parts[1].Body != "<p>Your invoice is <b>attached</b>.</p>" {
		t.Errorf("text and HTML parts: %+v, %+v", msg.Parts[0], msg.Parts[1])
	}
	att := msg.Parts[2]
	if att.MediaType != "application/pdf" || att.Header.Get("Content-Disposition") != `attachment; filename="invoice.pdf"` {
		t.Errorf("attachment part header %v, want application/pdf named invoice.pdf", att.Header)
	}
	if !bytes.Equal(att.Data, file) {
		t.Errorf("attachment arrived as %d bytes that differ from the %d sent", len(att.Data), len(file))
	}

	_, evs := story(t, c.API, id, 3)
	queued := eventData(t, evs[0])
	refs, _ := queued["attachments"].([]any)
	if len(refs) != 1 {
		t.Fatalf("NotificationQueued attachments = %v, want one", queued["attachments"])
	}
	ref, _ := refs[0].(map[string]any)
	if ref["sha256"] != hex.EncodeToString(sum[:]) || ref["filename"] != "invoice.pdf" || ref["size"] != float64(len(file)) {
		t.Errorf("NotificationQueued attachment = %v, want invoice.pdf, %d bytes, sha256 %x", ref, len(file), sum)
	}
	if n := len(evs[0].Data); n > 4<<10 {
		t.Errorf("NotificationQueued is %d bytes: the file's bytes are in the log", n)
	}
}
