// Package apitest provides test doubles for code that talks to vswitchd's
// API: Fake, an in-memory api.Service that judges port requests as the
// daemon does (api.PortSpec.Apply: the rules, codes and messages of package
// port), and Serve, which runs the real api.Server for a Service on a Unix
// socket in a test's temporary directory.
//
//	fake := apitest.NewFake()
//	sock := apitest.Serve(t, fake)
//	c := api.NewClient(sock)
//
// It is meant for tests of the CLI, the libvirt hook and the API itself, in
// the spirit of net/http/httptest; it is not a datapath.
package apitest
