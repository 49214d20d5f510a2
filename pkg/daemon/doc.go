// Package daemon is vswitchd's wiring: it opens the state store, picks and
// starts the datapath backend, restores every configured port, follows
// interfaces coming and going through netlink (attaching a port the moment
// its tap appears), and implements the control API (api.Service) on top of
// all of that. Every configuration change is written to the store before the
// API answers, so a daemon killed at any point restarts with everything it
// acknowledged.
package daemon
