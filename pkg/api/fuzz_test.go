package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

// FuzzRequestBody feeds arbitrary bodies to the two routes that decode
// one: whatever arrives, the answer is a 2xx or a well-formed JSON 4xx, never
// a 500 or a panic.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"vnet1","vlan":10}`, `{"name":"vnet1","trunk":"10,20-30","native_vlan":10}`,
		`{"name":"v","macs":["52:54:00:12:34:56"],"pcp":3,"svid":7,"flood_unknown":true}`,
		`{"vlan":4095}`, `{"name":1}`, `{"name":"x","vlan":1}{}`, `[]`, `null`, `{"macs":null}`,
		`{"name":"x","vlan":1e400}`, "\x00", `{"name":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	h := api.NewServer(apitest.NewFake(), nil).Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, req := range []struct{ method, path string }{{"POST", "/v1/ports"}, {"PATCH", "/v1/ports/vnet1"}} {
			r, _ := http.NewRequest(req.method, req.path, bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			rec := &recorder{h: http.Header{}}
			h.ServeHTTP(rec, r)
			if rec.status == 0 {
				rec.status = 200
			}
			if rec.status >= 500 {
				t.Fatalf("%s %s %q: status %d %s", req.method, req.path, body, rec.status, rec.body.Bytes())
			}
			if rec.status >= 400 {
				var e api.Error
				if err := json.Unmarshal(rec.body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" {
					t.Fatalf("%s %q: error body %q is not an API error", req.method, body, rec.body.Bytes())
				}
			}
		}
	})
}
