package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Server serves the control API on top of a Service.
type Server struct {
	svc Service
	log *slog.Logger
	mux *http.ServeMux
}

// NewServer returns a Server answering with svc. A nil logger discards logs.
func NewServer(svc Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, log: logger, mux: http.NewServeMux()}
	s.route("/v1/status", map[string]http.HandlerFunc{"GET": s.status})
	s.route("/v1/ports", map[string]http.HandlerFunc{"GET": s.listPorts, "POST": s.addPort})
	s.route("/v1/ports/{name}", map[string]http.HandlerFunc{
		"GET": s.getPort, "PATCH": s.updatePort, "DELETE": s.deletePort,
	})
	s.route("/v1/fdb", map[string]http.HandlerFunc{"GET": s.fdb})
	s.route("/v1/stats", map[string]http.HandlerFunc{"GET": s.stats})
	s.route("/v1/vsis", map[string]http.HandlerFunc{"GET": s.vsis})
	s.route("/v1/lldp", map[string]http.HandlerFunc{"GET": s.lldp})
	s.route("/v1/capture", map[string]http.HandlerFunc{"GET": s.capture})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound,
			fmt.Sprintf("no API endpoint %s: see /v1/status, /v1/ports, /v1/fdb, /v1/stats, /v1/vsis, /v1/lldp, /v1/capture", r.URL.Path))
	})
	return s
}

// route registers one handler per method on pattern, and a fallback on the
// bare pattern that answers any other method with a JSON 405.
func (s *Server) route(pattern string, byMethod map[string]http.HandlerFunc) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
		if h, ok := byMethod[m]; ok {
			s.mux.HandleFunc(m+" "+pattern, h)
			allowed = append(allowed, m)
		}
	}
	allow := strings.Join(allowed, ", ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, allow))
	})
}

// Handle mounts an extra handler (e.g. "GET /metrics" for Prometheus).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler is the API with panic recovery and request logging around it.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in API handler", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rw.wrote {
					writeError(rw, http.StatusInternalServerError, CodeInternal,
						"internal error in vswitchd (details are in its log)")
				}
			}
			s.log.Debug("api request", "method", r.Method, "path", r.URL.Path,
				"status", rw.status, "duration", time.Since(start))
		}()
		s.mux.ServeHTTP(rw, r)
	})
}

// Serve answers on l until ctx is done, then shuts down gracefully (see
// Serve).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return Serve(ctx, l, s.Handler(), s.log)
}

// NotServing answers every request with code's HTTP status and code, and
// the message msg returns at the time: the API of a daemon that does not
// serve yet (CodeStarting), on its socket, so that a client learns why
// rather than finding no socket.
func NotServing(code string, msg func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, HTTPStatus(code), code, msg())
	})
}

// ShutdownGrace is how long Serve lets running requests finish once its
// context is done; requests still running then are cut off, so whoever
// stops next (the datapath, the store) never races a handler.
const ShutdownGrace = 3 * time.Second

// Serve answers HTTP requests on l with h until ctx is done, then shuts
// down gracefully (ShutdownGrace). It is the one HTTP server setup of
// vswitchd: the API socket and the --metrics listener both use it, with the
// limits of limits.go (connections, timeouts, header size). The
// error is nil after a shutdown, else why serving stopped.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       BodyTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Streams (GET /v1/capture) watch ctx to end in time at a shutdown;
		// other requests finish as they would.
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), serveCtxKey{}, ctx)
		},
		ConnContext: ConnContext,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(newLimitListener(l, MaxConns)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ---- handlers ----

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.Status(r.Context())
	s.reply(w, r, http.StatusOK, st, err)
}

func (s *Server) listPorts(w http.ResponseWriter, r *http.Request) {
	ps, err := s.svc.ListPorts(r.Context())
	if ps == nil {
		ps = []Port{}
	}
	s.reply(w, r, http.StatusOK, ps, err)
}

func (s *Server) addPort(w http.ResponseWriter, r *http.Request) {
	var spec PortSpec
	if !s.decode(w, r, &spec) {
		return
	}
	if spec.Name == "" {
		writeError(w, http.StatusBadRequest, CodeInvalidName, `port "name" is required`)
		return
	}
	p, err := s.svc.AddPort(r.Context(), spec)
	if err == nil {
		w.Header().Set("Location", "/v1/ports/"+p.Name)
	}
	s.reply(w, r, http.StatusCreated, p, err)
}

func (s *Server) getPort(w http.ResponseWriter, r *http.Request) {
	p, err := s.svc.GetPort(r.Context(), r.PathValue("name"))
	s.reply(w, r, http.StatusOK, p, err)
}

func (s *Server) updatePort(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var spec PortSpec
	if !s.decode(w, r, &spec) {
		return
	}
	if spec.Name != "" && spec.Name != name {
		writeError(w, http.StatusBadRequest, CodeInvalidName,
			fmt.Sprintf("cannot rename port %s to %s: delete it and add %s", name, spec.Name, spec.Name))
		return
	}
	p, err := s.svc.UpdatePort(r.Context(), name, spec)
	s.reply(w, r, http.StatusOK, p, err)
}

func (s *Server) deletePort(w http.ResponseWriter, r *http.Request) {
	err := s.svc.DeletePort(r.Context(), r.PathValue("name"))
	s.reply(w, r, http.StatusNoContent, nil, err)
}

func (s *Server) fdb(w http.ResponseWriter, r *http.Request) {
	vlan := 0
	if q := r.URL.Query().Get("vlan"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 0 || v > 4094 {
			writeError(w, http.StatusBadRequest, CodeInvalidVLAN,
				fmt.Sprintf("invalid VLAN %q: must be 1-4094 (or 0 for all)", q))
			return
		}
		vlan = v
	}
	es, err := s.svc.FDB(r.Context(), vlan)
	if es == nil {
		es = []FDBEntry{}
	}
	s.reply(w, r, http.StatusOK, es, err)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.Stats(r.Context())
	s.reply(w, r, http.StatusOK, st, err)
}

func (s *Server) vsis(w http.ResponseWriter, r *http.Request) {
	vs, err := s.svc.VSIs(r.Context())
	if vs == nil {
		vs = []VSI{}
	}
	s.reply(w, r, http.StatusOK, vs, err)
}

// ---- plumbing ----

// reply writes v with status ok, or the error err maps to.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, ok int, v any, err error) {
	if err != nil {
		code := CodeOf(err)
		status := HTTPStatus(code)
		if status >= 500 {
			s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, status, code, err.Error())
		return
	}
	if v == nil || ok == http.StatusNoContent {
		w.WriteHeader(ok)
		return
	}
	writeJSON(w, ok, v)
}

// decode reads a strict JSON body into v, answering the error itself.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("request body must be JSON: send Content-Type: application/json (got %q)", ct))
		return false
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err = dec.Decode(v); err == nil {
			err = exactFieldNames(raw, v)
		}
		if err == nil {
			// Exactly one JSON value: anything but whitespace after it is an error.
			if _, terr := dec.Token(); terr != io.EOF {
				err = errors.New("unexpected data after the JSON object")
			}
		}
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, CodeInvalidBody, "request body is empty: send a JSON object")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, CodeInvalidBody, "malformed JSON in request body: "+err.Error())
	case errors.As(err, &te):
		writeError(w, http.StatusBadRequest, CodeInvalidBody,
			fmt.Sprintf("field %q must be a JSON %s, not %s", te.Field, te.Type, te.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		writeError(w, http.StatusBadRequest, CodeInvalidBody,
			"unknown "+strings.TrimPrefix(err.Error(), "json: ")+" in request body")
	default:
		writeError(w, http.StatusBadRequest, CodeInvalidBody, "invalid request body: "+err.Error())
	}
	return false
}

// exactFieldNames refuses a JSON object whose keys match v's field names
// only case-insensitively (encoding/json accepts {"VLAN":1} for "vlan", and
// {"vlan":100,"Vlan":300} would silently take the second): field names are
// a contract, matched exactly.
func exactFieldNames(raw []byte, v any) error {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var m map[string]json.RawMessage
	if t.Kind() != reflect.Struct || json.Unmarshal(raw, &m) != nil {
		return nil // not an object: the decoder has judged it
	}
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		names[name] = true
	}
	for k := range m {
		if !names[k] {
			return fmt.Errorf("json: unknown field %q (field names are case-sensitive)", k)
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(Error{Message: oneLine(msg), Code: code})
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}
