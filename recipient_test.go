package herald_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/herald-notify/herald"
)

func TestValidateRecipient(t *testing.T) {
	const e164 = ": E.164 like +14155550123 is expected"
	tests := []struct {
		name      string
		channel   herald.Channel
		recipient string
		// fields is nil for a valid recipient.
		fields map[string]string
	}{
		{"plain address", herald.ChannelEmail, "ada@example.com", nil},
		{"display name", herald.ChannelEmail, "Ada Lovelace <ada@example.com>", nil},
		{"quoted display name", herald.ChannelEmail, `"Lovelace, Ada" <ada@example.com>`, nil},
		{"UTF-8 local part", herald.ChannelEmail, "jörg@example.com", nil},
		{"IDN domain", herald.ChannelEmail, "ada@bücher.example", nil},
		{"UTF-8 display name", herald.ChannelEmail, "Jörg Müller <jorg@example.com>", nil},
		{"subaddress", herald.ChannelEmail, "ada+news@example.com", nil},
		{"longest local part", herald.ChannelEmail, strings.Repeat("a", 64) + "@example.com", nil},

		{"empty email", herald.ChannelEmail, "", map[string]string{"recipient": "is required"}},
		{"blank email", herald.ChannelEmail, "  ", map[string]string{"recipient": "is required"}},
		{"missing @", herald.ChannelEmail, "ada.example.com",
			map[string]string{"recipient": "not an email address: missing '@'"}},
		{"missing local part", herald.ChannelEmail, "@example.com",
			map[string]string{"recipient": "not an email address: missing the part before '@'"}},
		{"missing domain", herald.ChannelEmail, "ada@",
			map[string]string{"recipient": "not an email address: missing domain after '@'"}},
		{"double dot", herald.ChannelEmail, "ada@example..com",
			map[string]string{"recipient": "not an email address: want name@domain, with no spaces or misplaced dots"}},
		{"space in address", herald.ChannelEmail, "ada lovelace@example.com",
			map[string]string{"recipient": "not an email address: want name@domain, with no spaces or misplaced dots"}},
		{"unclosed angle", herald.ChannelEmail, "Ada <ada@example.com",
			map[string]string{"recipient": "not an email address: unclosed angle-addr"}},
		{"CRLF header injection", herald.ChannelEmail, "ada@example.com\r\nBcc: x@y",
			map[string]string{"recipient": "must be a single line: line breaks are not allowed"}},
		{"LF alone", herald.ChannelEmail, "ada@example.com\nBcc: x@y",
			map[string]string{"recipient": "must be a single line: line breaks are not allowed"}},
		{"line break hidden in an encoded display name", herald.ChannelEmail,
			"=?utf-8?q?Ada=0D=0ABcc=3A_x?= <ada@example.com>",
			map[string]string{"recipient": "display name must be a single line: line breaks are not allowed"}},
		{"NUL", herald.ChannelEmail, "ada\x00@example.com",
			map[string]string{"recipient": "contains the control character U+0000"}},
		{"tab", herald.ChannelEmail, "Ada\t<ada@example.com>",
			map[string]string{"recipient": "contains the control character U+0009"}},
		{"leading space", herald.ChannelEmail, " ada@example.com",
			map[string]string{"recipient": "must not start or end with whitespace"}},
		{"trailing space", herald.ChannelEmail, "ada@example.com ",
			map[string]string{"recipient": "must not start or end with whitespace"}},
		{"invalid UTF-8", herald.ChannelEmail, "ad\xffa@example.com",
			map[string]string{"recipient": "is not valid UTF-8"}},
		{"list", herald.ChannelEmail, "a@example.com, b@example.com",
			map[string]string{"recipient": "must be exactly one email address, not a list"}},
		{"list with names", herald.ChannelEmail, "A <a@example.com>, B <b@example.com>",
			map[string]string{"recipient": "must be exactly one email address, not a list"}},
		{"semicolon list", herald.ChannelEmail, "a@example.com;b@example.com",
			map[string]string{"recipient": "must be exactly one email address, not a list"}},
		{"group of two", herald.ChannelEmail, "team: a@example.com, b@example.com;",
			map[string]string{"recipient": "must be exactly one email address, not a list"}},
		{"local part too long", herald.ChannelEmail, strings.Repeat("a", 65) + "@example.com",
			map[string]string{"recipient": "the part before '@' is longer than 64 bytes"}},
		{"address too long", herald.ChannelEmail, "ada@" + strings.Repeat("d", 251) + ".com",
			map[string]string{"recipient": "address is longer than 254 bytes"}},
		{"recipient too long", herald.ChannelEmail, strings.Repeat("A", 310) + " <ada@example.com>",
			map[string]string{"recipient": "is longer than 320 bytes"}},

		{"US number", herald.ChannelSMS, "+14155550123", nil},
		{"UK number", herald.ChannelSMS, "+442071838750", nil},
		{"shortest", herald.ChannelSMS, "+12", nil},
		{"fifteen digits", herald.ChannelSMS, "+123456789012345", nil},

		{"empty phone", herald.ChannelSMS, "", map[string]string{"recipient": "is required"}},
		{"international prefix", herald.ChannelSMS, "00442071838750",
			map[string]string{"recipient": "must start with '+' instead of 00" + e164}},
		{"no plus", herald.ChannelSMS, "14155550123",
			map[string]string{"recipient": "must start with '+' and the country code" + e164}},
		{"zero country code", herald.ChannelSMS, "+04155550123",
			map[string]string{"recipient": "country code cannot start with 0" + e164}},
		{"sixteen digits", herald.ChannelSMS, "+1234567890123456",
			map[string]string{"recipient": "has more than 15 digits" + e164}},
		{"one digit", herald.ChannelSMS, "+1", map[string]string{"recipient": "is too short" + e164}},
		{"letters", herald.ChannelSMS, "+1415CALLNOW",
			map[string]string{"recipient": "may contain only digits after '+', no spaces, dashes or parentheses" + e164}},
		{"spaces", herald.ChannelSMS, "+1 415 555 0123",
			map[string]string{"recipient": "may contain only digits after '+', no spaces, dashes or parentheses" + e164}},
		{"dashes and parentheses", herald.ChannelSMS, "+1 (415) 555-0123",
			map[string]string{"recipient": "may contain only digits after '+', no spaces, dashes or parentheses" + e164}},
		{"trailing newline", herald.ChannelSMS, "+14155550123\n",
			map[string]string{"recipient": "may contain only digits after '+', no spaces, dashes or parentheses" + e164}},
		{"email on sms", herald.ChannelSMS, "ada@example.com",
			map[string]string{"recipient": "must start with '+' and the country code" + e164}},

		{"unknown channel", herald.Channel("pigeon"), "ada@example.com",
			map[string]string{"type": `unknown channel "pigeon": want email or sms`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := herald.ValidateRecipient(tt.channel, tt.recipient)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("ValidateRecipient(%s, %q) = %v, want nil", tt.channel, tt.recipient, err)
				}
				return
			}
			if code := herald.ErrorCode(err); code != herald.EINVALID {
				t.Fatalf("ValidateRecipient(%s, %q) code = %q (%v), want %q", tt.channel, tt.recipient, code, err, herald.EINVALID)
			}
			if diff := cmp.Diff(tt.fields, herald.ErrorFields(err)); diff != "" {
				t.Errorf("ValidateRecipient(%s, %q) fields (-want +got):\n%s", tt.channel, tt.recipient, diff)
			}
		})
	}
}
