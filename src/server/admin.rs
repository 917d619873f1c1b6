//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (able to serve).

use std::rc::Rc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::http::{self, Refusal, Request, Response};

/// What `/readyz` asks: `Ok` (with what is degraded but still serving, if anything) or the
/// reasons the server is not ready.
pub type Readiness = Rc<dyn Fn() -> Result<Option<String>, Vec<String>>>;

/// Serves the admin endpoints.
pub struct AdminHandler {
    /// Renders the metrics.
    pub metrics: PrometheusHandle,
    /// Decides readiness.
    pub readiness: Readiness,
    /// Where every core's signer counters are.
    pub lifecycle: std::sync::Arc<super::lifecycle::Lifecycle>,
}

impl AdminHandler {
    fn render_metrics(&self) -> String {
        if let Ok(signers) = self.lifecycle.signer_stats.lock() {
            for (core, stats) in signers.iter() {
                crate::telemetry::publish_signer(*core, &stats.snapshot());
            }
        }
        self.metrics.render()
    }
}

impl http::Handler for AdminHandler {
    async fn handle(&self, request: Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            let mut r = Response::new(405, "text/plain; charset=utf-8", "use GET\n");
            r.headers.push(("Allow", "GET, HEAD".into()));
            return r;
        }
        match request.path.as_str() {
            "/metrics" => Response::new(200, "text/plain; version=0.0.4", self.render_metrics()),
            "/healthz" => Response::new(200, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => match (self.readiness)() {
                Ok(None) => Response::new(200, "text/plain; charset=utf-8", "ready\n"),
                Ok(Some(degraded)) => {
                    Response::new(200, "text/plain; charset=utf-8", format!("ready, degraded: {degraded}\n"))
                }
                Err(reasons) => Response::new(
                    503,
                    "text/plain; charset=utf-8",
                    format!("not ready: {}\n", reasons.join("; ")),
                ),
            },
            _ => Response::new(404, "text/plain; charset=utf-8", "try /metrics, /healthz or /readyz\n"),
        }
    }

    fn refuse(&self, refusal: Refusal, _path: Option<&str>) -> Response {
        Response::new(refusal.status(), "text/plain; charset=utf-8", format!("{refusal:?}\n"))
    }
}
