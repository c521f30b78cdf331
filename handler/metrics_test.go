package handler

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/berth-dev/berth/deployer"
)

// berth writes the exposition format itself: the Prometheus parser must read all of it, with
// the histogram's cumulative buckets, escaped label values and the runtime's families.
func TestMetricsParseAsPrometheusText(t *testing.T) {
	depth := 3
	m := NewMetrics(`v1 "quoted" \ new`+"\nline", func() int { return depth })
	started := time.Unix(1_800_000_000, 0)
	m.Observe(deployer.Record{Project: "shop", Service: "web", Outcome: deployer.OutcomeDeployed, Started: started, Duration: 1500 * time.Millisecond})
	m.Observe(deployer.Record{Project: "shop", Service: "web", Outcome: deployer.OutcomeDeployed, Started: started, Duration: 2 * time.Second})
	m.Observe(deployer.Record{Project: "shop", Service: "web", Outcome: deployer.OutcomeFailed, Started: started, Duration: time.Hour})
	m.ObserveWatchCheck("ok", started)
	m.ObserveWatchCheck("throttled", started.Add(time.Minute))
	counted := m.countWebhooks(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noteSource(r, "dockerhub")
		w.WriteHeader(http.StatusAccepted)
	}))
	for range 2 {
		counted.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/webhook", nil))
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	one := func(name string) *dto.Metric {
		t.Helper()
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			t.Fatalf("no %s in the scrape", name)
		}
		return f.GetMetric()[0]
	}
	if got := one("berth_webhook_requests_total").GetCounter().GetValue(); got != 2 {
		t.Errorf("webhooks = %v, want 2", got)
	}
	if got := one("berth_watch_last_check_timestamp_seconds").GetGauge().GetValue(); got != 1_800_000_060 {
		t.Errorf("watch last check = %v, want the second check's time", got)
	}
	if f := fams["berth_watch_checks_total"]; len(f.GetMetric()) != 2 || f.GetMetric()[1].GetLabel()[0].GetValue() != "throttled" {
		t.Errorf("watch checks %v, want one ok and one throttled", f.GetMetric())
	}
	if got := one("berth_queue_depth").GetGauge().GetValue(); got != 3 {
		t.Errorf("queue depth = %v, want 3", got)
	}
	if got := one("berth_build_info").GetLabel()[0].GetValue(); got != `v1 "quoted" \ new`+"\nline" {
		t.Errorf("version label read back as %q", got)
	}
	if got := one("berth_last_successful_deploy_timestamp_seconds").GetGauge().GetValue(); got != 1_800_000_002 {
		t.Errorf("last success = %v, want the second deploy's end", got)
	}
	var deployed *dto.Histogram
	for _, mt := range fams["berth_deploy_duration_seconds"].GetMetric() {
		if mt.GetLabel()[0].GetValue() == deployer.OutcomeDeployed {
			deployed = mt.GetHistogram()
		}
	}
	if deployed == nil || deployed.GetSampleCount() != 2 || deployed.GetSampleSum() != 3.5 {
		t.Fatalf("deployed histogram = %v, want 2 samples summing to 3.5", deployed)
	}
	for _, b := range deployed.GetBucket() {
		want := map[float64]uint64{0.5: 0, 1: 0, 2: 2}[b.GetUpperBound()]
		if b.GetUpperBound() > 2 {
			want = 2
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_info", "process_resident_memory_bytes", "process_start_time_seconds", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if rss := one("process_resident_memory_bytes").GetGauge().GetValue(); rss < 1<<20 {
		t.Errorf("resident memory %v bytes, not a plausible reading", rss)
	}
	if start := one("process_start_time_seconds").GetGauge().GetValue(); time.Since(time.Unix(int64(start), 0)) > 24*time.Hour || start > float64(time.Now().Unix()+1) {
		t.Errorf("process start time %v is not this test process's", start)
	}
}
