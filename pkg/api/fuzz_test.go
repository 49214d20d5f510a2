package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/vswitch/vswitch/pkg/api"
	"github.com/vswitch/vswitch/pkg/api/apitest"
)

// FuzzRequestBody feeds arbitrary bodies to the two routes that decode
// one, on a fresh daemon (the fake) holding port vnet1: whatever arrives,
// the answer is a 2xx or a well-formed JSON 4xx, never a 500 or a panic,
// and a 2xx answer is what the daemon then holds (GET shows the same port
// object, owner included).
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"vnet1","vlan":10}`, `{"name":"vnet1","trunk":"10,20-30","native_vlan":10}`,
		`{"name":"v","macs":["52:54:00:12:34:56"],"pcp":3,"svid":7,"flood_unknown":true}`,
		`{"vlan":4095}`, `{"name":1}`, `{"name":"x","vlan":1}{}`, `[]`, `null`, `{"macs":null}`,
		`{"name":"x","vlan":1e400}`, "\x00", `{"name":"\ud800"}`,
		`{"name":"vnet2","vlan":10,"owner":"4dea22b3-1d52-d8f3-2516-782e98ab3fa0"}`, `{"owner":""}`, `{"owner":"a b"}`,
		`{"name":"vnet2","vlan":10,"Owner":"x"}`, `{"vlan":100,"Vlan":300}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fake := apitest.NewFake()
		vid := 5
		if _, err := fake.AddPort(context.Background(), api.PortSpec{Name: "vnet1", VLAN: &vid}); err != nil {
			t.Fatal(err)
		}
		h := api.NewServer(fake, nil).Handler()
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
				continue
			}
			var p api.Port
			if err := json.Unmarshal(rec.body.Bytes(), &p); err != nil || p.Name == "" {
				t.Fatalf("%s %q: answer %q is not a port (%v)", req.method, body, rec.body.Bytes(), err)
			}
			g, _ := http.NewRequest("GET", "/v1/ports/"+url.PathEscape(p.Name), nil)
			got := &recorder{h: http.Header{}}
			h.ServeHTTP(got, g)
			if !bytes.Equal(bytes.TrimSpace(got.body.Bytes()), bytes.TrimSpace(rec.body.Bytes())) {
				t.Fatalf("%s %q answered %s, GET shows %s", req.method, body, rec.body.Bytes(), got.body.Bytes())
			}
		}
	})
}
