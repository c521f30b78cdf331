package handler

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/deployer"
)

// Metrics are berth's Prometheus metrics, on a registry of their own (no global state).
type Metrics struct {
	reg         *prometheus.Registry
	webhooks    *prometheus.CounterVec
	deploys     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers berth's metrics; queueDepth reports the deploys running or waiting.
func NewMetrics(version string, queueDepth func() int) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_webhook_requests_total", Help: "Webhook calls by sender kind and HTTP status code.",
		}, []string{"source", "code"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_deploys_total", Help: "Finished service deploys by service (project/service) and outcome.",
		}, []string{"service", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_deploy_duration_seconds", Help: "How long service deploys took, by outcome.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"outcome"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_last_successful_deploy_timestamp_seconds", Help: "Unix time the service's last successful deploy finished.",
		}, []string{"service"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "berth_build_info", Help: "Always 1; the labels say which berth runs.", ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(m.webhooks, m.deploys, m.duration, m.lastSuccess, build,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "berth_queue_depth", Help: "Services with a deploy running or waiting.",
		}, func() float64 { return float64(queueDepth()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Observe counts a finished deploy.
func (m *Metrics) Observe(r deployer.Record) {
	service := r.Project + "/" + r.Service
	m.deploys.WithLabelValues(service, r.Outcome).Inc()
	m.duration.WithLabelValues(r.Outcome).Observe(r.Duration.Seconds())
	if r.Outcome == deployer.OutcomeDeployed {
		m.lastSuccess.WithLabelValues(service).Set(float64(r.Started.Add(r.Duration).Unix()))
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

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
		m.webhooks.WithLabelValues(source, strconv.Itoa(rec.code)).Inc()
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
