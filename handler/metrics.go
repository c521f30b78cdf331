package handler

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// Metrics are berth's Prometheus metrics. berth writes the text exposition format itself: the
// client library, with the protobuf and compression code it brings, made up 5 MB of an 18 MB
// binary for six metrics, and its pages were a good part of berth's idle memory.
type Metrics struct {
	version    string
	queueDepth func() int

	mu          sync.Mutex
	webhooks    map[[2]string]uint64 // by source, code
	deploys     map[[2]string]uint64 // by service, outcome
	durations   map[string]*histogram
	lastSuccess map[string]float64 // by service: unix seconds
	watchChecks map[string]uint64  // watch mode's registry checks, by result
	watchLast   float64            // unix seconds of the last one
}

// durationBuckets are berth_deploy_duration_seconds' upper bounds, in seconds.
var durationBuckets = [...]float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600}

// histogram counts observations per bucket (not cumulative: the writer sums them).
type histogram struct {
	buckets [len(durationBuckets)]uint64
	count   uint64
	sum     float64
}

// NewMetrics starts berth's metrics; queueDepth reports the deploys running or waiting.
func NewMetrics(version string, queueDepth func() int) *Metrics {
	return &Metrics{version: version, queueDepth: queueDepth, webhooks: map[[2]string]uint64{},
		deploys: map[[2]string]uint64{}, durations: map[string]*histogram{}, lastSuccess: map[string]float64{}, watchChecks: map[string]uint64{}}
}

// Observe counts a finished deploy.
func (m *Metrics) Observe(r deployer.Record) {
	service := r.Project + "/" + r.Service
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deploys[[2]string{service, r.Outcome}]++
	h := m.durations[r.Outcome]
	if h == nil {
		h = &histogram{}
		m.durations[r.Outcome] = h
	}
	s := r.Duration.Seconds()
	if i, _ := slices.BinarySearch(durationBuckets[:], s); i < len(h.buckets) {
		h.buckets[i]++ // the first bucket whose bound is ≥ s
	}
	h.count++
	h.sum += s
	if r.Outcome == deployer.OutcomeDeployed {
		m.lastSuccess[service] = float64(r.Started.Add(r.Duration).Unix())
	}
}

// ObserveWatchCheck counts one of watch mode's registry checks (ok, throttled or error), made at at.
func (m *Metrics) ObserveWatchCheck(result string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchChecks[result]++
	m.watchLast = max(m.watchLast, float64(at.Unix()))
}

// Handler serves the metrics in the Prometheus text format (version 0.0.4).
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		m.write(bw)
		_ = bw.Flush()
	})
}

// write writes every metric family, each series sorted by its labels so scrapes compare.
func (m *Metrics) write(w io.Writer) {
	e := expo{w: w}
	m.mu.Lock()
	e.family("berth_webhook_requests_total", "counter", "Webhook calls by sender kind and HTTP status code.")
	for _, k := range slices.SortedFunc(maps.Keys(m.webhooks), compareKeys) {
		e.sample("berth_webhook_requests_total", labels{"source", k[0], "code", k[1]}, float64(m.webhooks[k]))
	}
	e.family("berth_deploys_total", "counter", "Finished service deploys by service (project/service) and outcome.")
	for _, k := range slices.SortedFunc(maps.Keys(m.deploys), compareKeys) {
		e.sample("berth_deploys_total", labels{"service", k[0], "outcome", k[1]}, float64(m.deploys[k]))
	}
	e.family("berth_deploy_duration_seconds", "histogram", "How long service deploys took, by outcome.")
	for _, outcome := range slices.Sorted(maps.Keys(m.durations)) {
		h := m.durations[outcome]
		var cumulative uint64
		for i, bound := range durationBuckets {
			cumulative += h.buckets[i]
			e.sample("berth_deploy_duration_seconds_bucket", labels{"outcome", outcome, "le", formatFloat(bound)}, float64(cumulative))
		}
		e.sample("berth_deploy_duration_seconds_bucket", labels{"outcome", outcome, "le", "+Inf"}, float64(h.count))
		e.sample("berth_deploy_duration_seconds_sum", labels{"outcome", outcome}, h.sum)
		e.sample("berth_deploy_duration_seconds_count", labels{"outcome", outcome}, float64(h.count))
	}
	e.family("berth_last_successful_deploy_timestamp_seconds", "gauge", "Unix time the service's last successful deploy finished.")
	for _, service := range slices.Sorted(maps.Keys(m.lastSuccess)) {
		e.sample("berth_last_successful_deploy_timestamp_seconds", labels{"service", service}, m.lastSuccess[service])
	}
	e.family("berth_watch_checks_total", "counter", "Watch mode's registry checks by result: ok, throttled (429/5xx) or error.")
	for _, result := range slices.Sorted(maps.Keys(m.watchChecks)) {
		e.sample("berth_watch_checks_total", labels{"result", result}, float64(m.watchChecks[result]))
	}
	if m.watchLast > 0 {
		e.gauge("berth_watch_last_check_timestamp_seconds", "Unix time of watch mode's last registry check.", m.watchLast)
	}
	m.mu.Unlock()

	e.gauge("berth_queue_depth", "Services with a deploy running or waiting.", float64(m.queueDepth()))
	e.family("berth_build_info", "gauge", "Always 1; the labels say which berth runs.")
	e.sample("berth_build_info", labels{"version", m.version}, 1)
	writeRuntime(&e)
	writeProcess(&e)
}

func compareKeys(a, b [2]string) int {
	return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
}

// writeRuntime writes the Go runtime's figures under the names Prometheus users know.
func writeRuntime(e *expo) {
	samples := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
	}
	metrics.Read(samples)
	value := func(s metrics.Sample) float64 {
		if s.Value.Kind() == metrics.KindUint64 {
			return float64(s.Value.Uint64())
		}
		return 0 // not known to this Go release
	}
	e.gauge("go_goroutines", "Number of goroutines that currently exist.", value(samples[0]))
	e.gauge("go_threads", "Number of OS threads created.", float64(pprof.Lookup("threadcreate").Count()))
	e.gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", value(samples[1]))
	e.gauge("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", value(samples[2]))
	e.family("go_gc_cycles_total", "counter", "Completed GC cycles.")
	e.sample("go_gc_cycles_total", nil, value(samples[3]))
	e.family("go_info", "gauge", "Information about the Go environment.")
	e.sample("go_info", labels{"version", runtime.Version()}, 1)
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux berth runs on.
const clockTicks = 100

// writeProcess writes the process_* figures from /proc; elsewhere it writes none.
func writeProcess(e *expo) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// The command name is in parentheses and may hold spaces: fields start after the last ")".
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest) // f[0] is field 3 (state) of proc(5)
	field := func(n int) float64 {
		if n-3 >= len(f) {
			return 0
		}
		v, _ := strconv.ParseFloat(f[n-3], 64)
		return v
	}
	e.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
	e.sample("process_cpu_seconds_total", nil, (field(14)+field(15))/clockTicks)
	e.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", field(24)*float64(os.Getpagesize()))
	e.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", field(23))
	if boot := bootTime(); boot > 0 {
		e.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", boot+field(22)/clockTicks)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.gauge("process_open_fds", "Number of open file descriptors.", float64(len(fds)))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		e.gauge("process_max_fds", "Maximum number of open file descriptors.", float64(lim.Cur))
	}
}

// bootTime is the machine's boot time in unix seconds (btime in /proc/stat), or 0.
func bootTime() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			t, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return t
		}
	}
	return 0
}

// labels are name, value pairs in the order they are written.
type labels []string

// expo writes the text exposition format.
type expo struct{ w io.Writer }

func (e *expo) family(name, typ, help string) {
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (e *expo) gauge(name, help string, v float64) {
	e.family(name, "gauge", help)
	e.sample(name, nil, v)
}

func (e *expo) sample(name string, l labels, v float64) {
	var b strings.Builder
	b.WriteString(name)
	for i := 0; i+1 < len(l); i += 2 {
		if i == 0 {
			b.WriteString("{")
		} else {
			b.WriteString(",")
		}
		b.WriteString(l[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(l[i+1]))
		b.WriteString(`"`)
	}
	if len(l) > 0 {
		b.WriteString("}")
	}
	b.WriteString(" ")
	b.WriteString(formatFloat(v))
	b.WriteString("\n")
	_, _ = io.WriteString(e.w, b.String())
}

// labelEscaper escapes a label value as the format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// sourceKey carries, in a webhook request's context, where the handler notes the sender kind
// it detected, for countWebhooks to read after the answer.
type sourceKey struct{}

// noteSource records the detected sender kind of a webhook request, when it is counted.
func noteSource(r *http.Request, name string) {
	if p, ok := r.Context().Value(sourceKey{}).(*string); ok {
		*p = name
	}
}

// countWebhooks counts every webhook call by sender kind ("unknown" before detection) and status.
func (m *Metrics) countWebhooks(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		source := "unknown"
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), sourceKey{}, &source)))
		m.mu.Lock()
		m.webhooks[[2]string{source, strconv.Itoa(rec.code)}]++
		m.mu.Unlock()
	})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
