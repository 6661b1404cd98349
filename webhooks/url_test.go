package webhooks_test

import (
	"strings"
	"testing"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/webhooks"
)

func TestValidateURL(t *testing.T) {
	strict := webhooks.Policy{}
	open := webhooks.Policy{AllowPrivate: true, AllowHTTP: true}
	tests := []struct {
		name    string
		raw     string
		policy  webhooks.Policy
		wantErr string // a part of the message; "" when the URL is accepted
	}{
		{"public https name", "https://hooks.example.com/herald?x=1", strict, ""},
		{"public https with port", "https://hooks.example.com:8443/h", strict, ""},
		{"public IPv4 literal", "https://93.184.216.34/h", strict, ""},
		{"public IPv6 literal", "https://[2606:2800:220:1::1]/h", strict, ""},
		{"http without AllowHTTP", "http://hooks.example.com/h", strict, "must use https"},
		{"http with AllowHTTP", "http://hooks.example.com/h", webhooks.Policy{AllowHTTP: true}, ""},
		{"ftp", "ftp://hooks.example.com/h", open, `scheme "ftp"`},
		{"relative", "/hooks/herald", open, "must be absolute"},
		{"no host", "https:///path", open, "has no host"},
		{"opaque", "https:hooks.example.com", open, "has no host"},
		{"port only", "https://:443/h", open, "has no host"},
		{"user and password", "https://bob:s3cret@hooks.example.com/h", open, "user name or password"},
		{"user only", "https://bob@hooks.example.com/h", open, "user name or password"},
		{"port zero", "https://hooks.example.com:0/h", open, "outside 1-65535"},
		{"port too big", "https://hooks.example.com:65536/h", open, "outside 1-65535"},
		{"port not a number", "https://hooks.example.com:https/h", open, "cannot be parsed"},
		{"too long", "https://hooks.example.com/" + strings.Repeat("a", 2048), open, "longer than 2048"},
		{"bad escape", "https://hooks.example.com/%zz", open, "cannot be parsed"},

		{"IPv4 loopback", "https://127.0.0.1/h", strict, "loopback"},
		{"IPv4 loopback elsewhere in 127/8", "https://127.8.9.10/h", strict, "loopback"},
		{"IPv6 loopback", "https://[::1]/h", strict, "loopback"},
		{"IPv4 unspecified", "https://0.0.0.0/h", strict, "unspecified"},
		{"IPv4 this network", "https://0.1.2.3/h", strict, "unspecified"},
		{"IPv6 unspecified", "https://[::]/h", strict, "unspecified"},
		{"10/8", "https://10.1.2.3/h", strict, "private"},
		{"172.16/12", "https://172.31.255.1/h", strict, "private"},
		{"192.168/16", "https://192.168.0.10/h", strict, "private"},
		{"IPv6 unique local", "https://[fd12:3456::1]/h", strict, "private"},
		{"carrier-grade NAT", "https://100.64.0.1/h", strict, "shared"},
		{"IPv4 link-local", "https://169.254.10.10/h", strict, "link-local"},
		{"IPv6 link-local", "https://[fe80::1]/h", strict, "link-local"},
		{"IPv6 link-local with zone", "https://[fe80::1%25eth0]/h", strict, "link-local"},
		{"IPv4 multicast", "https://224.0.0.1/h", strict, "multicast"},
		{"IPv6 multicast", "https://[ff02::1]/h", strict, "multicast"},
		{"broadcast", "https://255.255.255.255/h", strict, "broadcast"},
		{"AWS/GCP/Azure metadata", "http://169.254.169.254/latest/meta-data/", webhooks.Policy{AllowHTTP: true}, "metadata"},
		{"AWS IPv6 metadata", "https://[fd00:ec2::254]/h", strict, "metadata"},
		{"Alibaba metadata", "https://100.100.100.200/h", strict, "metadata"},
		{"mapped loopback", "https://[::ffff:127.0.0.1]/h", strict, "loopback"},
		{"mapped loopback in hex", "https://[::ffff:7f00:1]/h", strict, "loopback"},
		{"mapped private", "https://[::ffff:10.0.0.1]/h", strict, "private"},
		{"mapped unspecified", "https://[::ffff:0.0.0.0]/h", strict, "unspecified"},
		{"mapped metadata", "https://[::ffff:169.254.169.254]/h", strict, "metadata"},
		{"mapped link-local", "https://[::ffff:169.254.1.1]/h", strict, "link-local"},
		{"NAT64 of metadata", "https://[64:ff9b::a9fe:a9fe]/h", strict, "metadata"},
		{"NAT64 of private", "https://[64:ff9b::10.0.0.1]/h", strict, "private"},
		{"NAT64 of public", "https://[64:ff9b::93.184.216.34]/h", strict, ""},
		{"mapped public", "https://[::ffff:93.184.216.34]/h", strict, ""},
		{"short IPv4 form", "https://127.1/h", strict, "neither a domain name"},
		{"decimal IPv4 form", "https://2130706433/h", strict, "neither a domain name"},
		{"hex IPv4 form", "https://0x7f.0.0.1/h", strict, "neither a domain name"},
		{"octal IPv4 form", "https://0177.0.0.1/h", strict, "neither a domain name"},
		{"numeric-looking name is still a name", "https://0x7f.example.com/h", strict, ""},

		{"loopback with AllowPrivate", "https://127.0.0.1:8443/h", webhooks.Policy{AllowPrivate: true}, ""},
		{"metadata with AllowPrivate", "https://169.254.169.254/h", webhooks.Policy{AllowPrivate: true}, ""},
		{"name resolving to loopback passes the literal check", "https://localhost:8443/h", strict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := webhooks.ValidateURL(tt.raw, tt.policy)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateURL(%q) = %v, want it accepted", tt.raw, err)
				}
				if u == nil || u.Host == "" {
					t.Fatalf("ValidateURL(%q) returned URL %v, want it parsed", tt.raw, u)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateURL(%q) accepted it, want an error containing %q", tt.raw, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ValidateURL(%q) = %q, want it to contain %q", tt.raw, err, tt.wantErr)
			}
			if code := herald.ErrorCode(err); code != herald.EINVALID {
				t.Errorf("ValidateURL(%q) error code = %q, want %q", tt.raw, code, herald.EINVALID)
			}
		})
	}
}

// A password in a refused URL must not come back in the message, which may be logged or shown.
func TestValidateURLNeverEchoesPassword(t *testing.T) {
	for _, raw := range []string{
		"https://bob:s3cret@hooks.example.com/h",
		"https://bob:s3cret@hooks.example.com:99999/h",
		"https://bob:s3cret@hooks.example.com:port/h",
		"ftp://bob:s3cret@hooks.example.com/h",
		"https://bob:s3cret@hooks.example.com/%zz",
	} {
		_, err := webhooks.ValidateURL(raw, webhooks.Policy{})
		if err == nil {
			t.Fatalf("ValidateURL(%q) accepted it, want an error", raw)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ValidateURL error %q repeats the password", err)
		}
	}
}
