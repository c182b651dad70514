//! The HTTP server (hyper 1): `/metrics`, `/healthz`, `/readyz` and a landing page.
//!
//! Handlers are thin: encoding lives in `exposition`, state in the registry and the per-broker
//! views. `/readyz` reports the exporter, never a broker: a broker outage must not make
//! Kubernetes or Prometheus lose sight of the process that reports the outage.

use crate::config::{self, ProbeModule};
use crate::exposition::{self, Format};
use crate::probe::oneshot;
use crate::sys::SysStore;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What the landing page shows about one broker.
#[derive(Debug)]
pub struct BrokerView {
    pub name: String,
    pub url: String,
    pub up: Gauge,
    pub store: Arc<SysStore>,
}

/// The parts a configuration reload replaces as a whole.
#[derive(Debug, Default)]
pub struct Live {
    pub brokers: Vec<BrokerView>,
    pub probe_modules: BTreeMap<String, ProbeModule>,
    pub probe_allowed_targets: Option<regex::Regex>,
}

/// A reload request; the reply is the outcome in words.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<String, String>>;

#[derive(Debug)]
pub struct HttpState {
    pub registry: std::sync::Arc<Registry>,
    /// Rule groups and alerts for `/api/v1/rules` and `/api/v1/alerts`.
    pub rules: crate::rules::manager::SharedGroups,
    pub live: Arc<std::sync::RwLock<Arc<Live>>>,
    /// Where `POST /-/reload` sends its request.
    pub reload: tokio::sync::mpsc::Sender<ReloadRequest>,
    /// Set when shutdown begins: `/readyz` turns 503 while in-flight requests drain.
    pub shutdown: CancellationToken,
    /// TLS, basic auth and headers (web config), re-read when its file changes.
    pub web: crate::web::Web,
    pub max_connections: usize,
}

/// How long a client may take to send its request headers (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish once shutdown begins.
const DRAIN: Duration = Duration::from_secs(5);

/// Accept connections until `state.shutdown` fires, then drain (bounded) and return.
///
/// Each connection gets the web config as it is on disk at accept time (TLS, users, headers).
/// A TLS handshake and the request headers must each arrive within `HEADER_READ_TIMEOUT`, so
/// idle and slow clients cost one socket each and nothing else; beyond `max_connections`
/// sockets, new ones are closed at once rather than queued, so `/metrics` stays answerable
/// while the limit is below the process's file limit.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>) {
    let graceful = GracefulShutdown::new();
    let shutdown = state.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(state.max_connections));
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                warn!(
                    max_connections = state.max_connections,
                    refused, "too many open HTTP connections; closing new ones"
                );
            }
            drop(stream);
            continue;
        };
        let web = state.web.refresh();
        let st = state.clone();
        let conn_web = web.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            let web = conn_web.clone();
            async move { Ok::<_, Infallible>(handle_secured(&req, &st, &web).await) }
        });
        let builder = {
            let mut b = http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            b
        };
        match &web.tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(error = %e, "http connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let hs =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await;
                    let tls_stream = match hs {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let conn =
                        watcher.watch(builder.serve_connection(TokioIo::new(tls_stream), svc));
                    if let Err(e) = conn.await {
                        debug!(error = %e, "https connection ended with an error");
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("http connections still open after {DRAIN:?}; closing them");
    }
    info!("http server stopped");
}

/// How long `POST /-/reload` waits for the reload to finish.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

impl HttpState {
    fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn reload(req: &Request<Incoming>, st: &HttpState) -> Response<Full<Bytes>> {
    if req.method() != Method::POST && req.method() != Method::PUT {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST (or PUT) to reload the configuration\n",
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if st.reload.send(tx).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(Ok(what))) => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{what}\n"),
        ),
        Ok(Ok(Err(why))) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("failed to reload config: {why}\n"),
        ),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "reload did not finish\n"),
    }
}

/// Largest request body accepted (only `/-/reload` takes a request other than GET, and it
/// reads none).
const MAX_BODY: u64 = 64 * 1024;

/// Auth, body cap and the web config's extra headers around [`handle`].
async fn handle_secured(
    req: &Request<Incoming>,
    st: &HttpState,
    web: &crate::config::web::WebConfig,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    // Liveness and readiness stay open: kubelet probes carry no credentials and learn nothing.
    let open = path == "/healthz" || path == "/readyz";
    let mut rsp = if !open
        && !st
            .web
            .authorized(
                web,
                req.headers()
                    .get(hyper::header::AUTHORIZATION)
                    .map(|v| v.as_bytes()),
            )
            .await
    {
        let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mqtt-sentinel\""),
        );
        r
    } else if too_large(req) {
        let mut r = text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else {
        handle(req, st).await
    };
    for (k, v) in &web.headers {
        rsp.headers_mut().insert(k.clone(), v.clone());
    }
    rsp
}

fn too_large(req: &Request<Incoming>) -> bool {
    use hyper::body::Body;
    req.body().size_hint().upper().is_none_or(|n| n > MAX_BODY)
}

async fn handle(req: &Request<Incoming>, st: &HttpState) -> Response<Full<Bytes>> {
    if req.uri().path() == "/-/reload" {
        return reload(req, st).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are supported\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            match exposition::encode(&st.registry, format) {
                Ok(body) => respond(StatusCode::OK, format.content_type(), body),
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
            }
        }
        "/probe" => probe(req, st).await,
        "/api/v1/alerts" => {
            let v = crate::rules::api::alerts(&st.rules.lock());
            respond(StatusCode::OK, "application/json", v.to_string())
        }
        "/api/v1/rules" => {
            let v = crate::rules::api::rules(&st.rules.lock());
            respond(StatusCode::OK, "application/json", v.to_string())
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if st.shutdown.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", landing(st)),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; see / for the endpoints\n",
        ),
    }
}

/// Seconds of the scrape timeout kept for the response: blackbox_exporter's `--timeout-offset`
/// default (0.5 s).
const SCRAPE_TIMEOUT_OFFSET: f64 = 0.5;

/// The scrape timeout assumed when `X-Prometheus-Scrape-Timeout-Seconds` is absent, empty or 0:
/// blackbox_exporter's 120 s (its default since v0.15.0, PR #509).
const NO_SCRAPE_TIMEOUT: f64 = 120.0;

/// The `/probe` deadline from the `X-Prometheus-Scrape-Timeout-Seconds` header (seconds as
/// Prometheus formats them, e.g. `"10"` or `"0.4"`), the module's `timeout` and `offset`
/// seconds kept for the response. A port of blackbox_exporter's `getTimeout`
/// (`prober/handler.go` since v0.21.0; `main.go` before: PR #492 "do not apply offsets for
/// explicit timeouts", v0.15.0, and PR #869 "negative maxTimeoutSeconds", April 2022):
///
/// 1. the header, absent/empty/0 meaning 120 s, minus `offset` gives the maximum;
/// 2. the module's timeout is used as is (no offset) when it is below that maximum, or when the
///    maximum is not positive (a scrape timeout at or below the offset: blackbox #868);
/// 3. otherwise the maximum.
///
/// So `timeout: 300ms` with a 0.4 s header probes for 300 ms, and `timeout: 5s` with a 10 s
/// header for 5 s. Two deliberate differences, both outside what Prometheus sends
/// (`strconv.FormatFloat(s, 'f', -1, 64)`): a header exactly equal to the offset gives the
/// module's timeout (blackbox tests `< 0` and probes for 0 s, an instant failure of a healthy
/// broker), and a non-finite header (`NaN`, `inf`, `1e400`) is refused like any unparsable one
/// (Go refuses `1e400` too, but takes `Inf` as "no limit" and turns `NaN` into an undefined
/// duration). Hex floats (`0x1p-1`), which Go's `ParseFloat` accepts, are refused too.
///
/// Errors: the header is not a finite number; the message names the header and the value.
/// blackbox answers that with HTTP 500 ("Failed to parse timeout from Prometheus header").
fn probe_deadline(
    header: Option<&str>,
    module_timeout: Duration,
    offset: f64,
) -> Result<Duration, String> {
    let scrape = match header.map(str::trim).filter(|v| !v.is_empty()) {
        None => 0.0,
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() => s,
            _ => {
                return Err(format!(
                    "invalid X-Prometheus-Scrape-Timeout-Seconds {v:?}: expected a number of \
                     seconds such as \"10\" or \"0.5\""
                ));
            }
        },
    };
    let scrape = if scrape == 0.0 {
        NO_SCRAPE_TIMEOUT
    } else {
        scrape
    };
    let max = scrape - offset;
    let module = module_timeout.as_secs_f64();
    if (module > 0.0 && module < max) || max <= 0.0 {
        return Ok(module_timeout);
    }
    // `max` is finite and positive here.
    Ok(Duration::try_from_secs_f64(max).unwrap_or(module_timeout))
}

async fn probe(req: &Request<Incoming>, st: &HttpState) -> Response<Full<Bytes>> {
    let bad =
        |status: StatusCode, msg: String| respond(status, "text/plain; charset=utf-8", msg + "\n");
    let mut target = None;
    let mut module = "default".to_owned();
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "target" => target = Some(v.into_owned()),
            "module" => module = v.into_owned(),
            _ => {}
        }
    }
    let Some(target) = target else {
        return bad(
            StatusCode::BAD_REQUEST,
            "missing parameter target, e.g. /probe?target=mqtt://host:1883".into(),
        );
    };
    let url = match config::parse_broker_url(&target) {
        Ok(u) => u,
        Err(m) => return bad(StatusCode::BAD_REQUEST, format!("target: {m}")),
    };
    let live = st.live();
    if let Some(re) = &live.probe_allowed_targets
        && !re.is_match(&target)
    {
        return bad(
            StatusCode::FORBIDDEN,
            format!("target {target:?} is not allowed by probe_allowed_targets"),
        );
    }
    let Some(m) = live.probe_modules.get(&module) else {
        let known: Vec<&str> = live.probe_modules.keys().map(String::as_str).collect();
        return bad(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown module {module:?}; configured modules: {}",
                known.join(", ")
            ),
        );
    };
    // As blackbox_exporter: a header we cannot read is a 500, not a 400.
    let header = match req
        .headers()
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .map(HeaderValue::to_str)
        .transpose()
    {
        Ok(h) => h,
        Err(_) => {
            return bad(
                StatusCode::INTERNAL_SERVER_ERROR,
                "invalid X-Prometheus-Scrape-Timeout-Seconds: not visible ASCII text".into(),
            );
        }
    };
    let within = match probe_deadline(header, m.timeout, SCRAPE_TIMEOUT_OFFSET) {
        Ok(d) => d,
        Err(msg) => return bad(StatusCode::INTERNAL_SERVER_ERROR, msg),
    };
    // A run that cannot succeed in the time the scraper gives is a configuration error to
    // show, not a failed probe of a healthy broker.
    let needed = m.kind.shortest_run();
    if within < needed {
        return bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "module {module:?} needs at least {needed:?} for one run ({} probe), but the scrape timeout leaves {within:?}: raise the job's scrape_timeout",
                m.kind.as_str()
            ),
        );
    }
    let report = oneshot::run(url, m, 1, within).await;
    debug!(%target, %module, timeout_seconds = within.as_secs_f64(), success = report.success, reason = report.reason.as_str(), "one-shot probe");
    let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    match exposition::encode(&report.registry(), format) {
        Ok(body) => respond(StatusCode::OK, format.content_type(), body),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn landing(st: &HttpState) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mqtt-sentinel</title></head><body>\
         <h1>mqtt-sentinel</h1><ul>\
         <li><a href=\"/metrics\">/metrics</a></li>\
         <li><a href=\"/healthz\">/healthz</a></li>\
         <li><a href=\"/readyz\">/readyz</a></li>\
         <li>POST /-/reload (re-read the configuration file)</li>\
         <li>/probe?target=mqtt://host:1883&amp;module=default (one-shot probe)</li></ul>\
         <h2>Brokers</h2><table border=\"1\" cellpadding=\"4\">\
         <tr><th>broker</th><th>url</th><th>session</th><th>last $SYS update</th></tr>",
    );
    for b in &st.live().brokers {
        let state = if b.up.get() == 1 { "up" } else { "down" };
        let last = match b.store.last_update() {
            Some(t) => format!("{:.0} s ago", (now - t).max(0.0)),
            None => "never".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{last}</td></tr>",
            html_escape(&b.name),
            html_escape(&b.url)
        );
    }
    let _ = writeln!(
        h,
        "</table><p>mqtt-sentinel {} ({})</p></body></html>",
        crate::metrics::VERSION,
        crate::metrics::REVISION
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blackbox_exporter's `TestTimeoutIsSetCorrectly` (`prober/handler_test.go`, v0.21.0),
    /// case for case: (module timeout, header, offset, expected seconds). An empty header is
    /// how the Go test sends "absent".
    #[test]
    fn deadlines_follow_blackbox_table() {
        let ms = Duration::from_millis;
        let upstream: [(Duration, &str, f64, f64); 12] = [
            (ms(0), "15", 0.5, 14.5),
            (ms(0), "15", 0.0, 15.0),
            (ms(20_000), "15", 0.5, 14.5),
            (ms(20_000), "15", 0.0, 15.0),
            (ms(5_000), "15", 0.0, 5.0),
            (ms(5_000), "15", 0.5, 5.0),
            (ms(10_000), "", 0.5, 10.0),
            (ms(10_000), "10", 0.5, 9.5),
            (ms(9_500), "", 0.5, 9.5),
            (ms(9_500), "", 1.0, 9.5),
            (ms(0), "", 0.5, 119.5),
            (ms(0), "", 0.0, 120.0),
        ];
        for (module, header, offset, want) in upstream {
            let got = probe_deadline(Some(header), module, offset);
            assert_eq!(
                got,
                Ok(Duration::from_secs_f64(want)),
                "module {module:?}, header {header:?}, offset {offset}"
            );
        }
    }

    /// The rest of the class: header absent, 0, below the offset, at the offset, above the
    /// module timeout, negative, padded, unparsable.
    #[test]
    fn deadlines_edge_cases() {
        let ms = Duration::from_millis;
        let d = |h: Option<&str>, module: u64| probe_deadline(h, ms(module), SCRAPE_TIMEOUT_OFFSET);
        // issue 20's minimal case: below the offset, the module's timeout as is (blackbox #868)
        assert_eq!(d(Some("0.4"), 300), Ok(ms(300)));
        assert_eq!(d(Some("0.4"), 5_000), Ok(ms(5_000)));
        assert_eq!(d(Some("0.2"), 2_000), Ok(ms(2_000)));
        // at the offset: blackbox probes for 0 s; we use the module's timeout
        assert_eq!(d(Some("0.5"), 300), Ok(ms(300)));
        // just above the offset: what is left after it, below a larger module timeout
        assert_eq!(d(Some("0.75"), 300), Ok(ms(250)));
        // absent, empty, blank and 0 all mean 120 s
        for h in [
            None,
            Some(""),
            Some("  "),
            Some("0"),
            Some("0.0"),
            Some("-0"),
        ] {
            assert_eq!(d(h, 5_000), Ok(ms(5_000)), "{h:?}");
            assert_eq!(d(h, 200_000), Ok(ms(119_500)), "{h:?}");
        }
        // above the module timeout: the module's; below it: header minus offset
        assert_eq!(d(Some("10"), 5_000), Ok(ms(5_000)));
        assert_eq!(d(Some(" 10 "), 5_000), Ok(ms(5_000)));
        assert_eq!(d(Some("1"), 5_000), Ok(ms(500)));
        assert_eq!(d(Some("5.5"), 5_000), Ok(ms(5_000)));
        // negative: the maximum is negative, so the module's timeout (as blackbox)
        assert_eq!(d(Some("-1"), 5_000), Ok(ms(5_000)));
        // unparsable (blackbox: HTTP 500)
        for h in ["abc", "10s", "1,5", "NaN", "inf", "-inf", "1e400", "0x1p-1"] {
            let e = d(Some(h), 5_000).unwrap_err();
            assert!(
                e.contains("X-Prometheus-Scrape-Timeout-Seconds") && e.contains(&format!("{h:?}")),
                "{h}: {e}"
            );
        }
    }
}
