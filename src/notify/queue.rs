//! Delivery: one bounded queue and one worker per receiver. Enqueueing never waits (a full
//! queue drops the job and counts it); the worker POSTs with a timeout, retries 5xx, 429 and
//! network errors with capped exponential backoff and full jitter (honouring `Retry-After`),
//! never retries other 4xx, never follows redirects, and on shutdown flushes for a bounded
//! time. Standard Webhooks signing keeps `webhook-id` stable across retries.

use super::Job;
use super::signing;
use crate::config::{Receiver, ReceiverKind};
use crate::metrics::{NotificationResult, ReceiverLabels, RulesMetrics};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// `Retry-After` (RFC 9110): delay-seconds or an HTTP-date; a date in the past means now.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long pending notifications may take to go out once shutdown begins.
pub const FLUSH: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The sending side of every receiver's queue.
#[derive(Clone)]
pub struct Queues {
    senders: Vec<mpsc::Sender<Job>>,
    names: Vec<String>,
    metrics: RulesMetrics,
}

impl Queues {
    /// Enqueues without waiting; a full queue drops the job (counted as `dropped`).
    pub fn push(&self, receiver: usize, job: Job) {
        let (Some(tx), Some(name)) = (self.senders.get(receiver), self.names.get(receiver)) else {
            return;
        };
        match tx.try_send(job) {
            Ok(()) => {
                self.metrics
                    .queue_length
                    .get_or_create(&ReceiverLabels {
                        receiver: name.clone(),
                    })
                    .inc();
            }
            Err(_) => {
                warn!(receiver = %name, "notification queue full: notification dropped");
                self.metrics.notified(name, NotificationResult::Dropped);
            }
        }
    }
}

/// The HTTP client for every receiver: rustls, no redirects.
pub fn client() -> reqwest::Result<reqwest::Client> {
    // Several crates could install a provider; the first one wins and that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mqtt-sentinel/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Creates the queues and returns the workers to spawn (one per receiver).
pub fn start(
    receivers: &[Receiver],
    capacity: usize,
    metrics: RulesMetrics,
    client: reqwest::Client,
    shutdown: CancellationToken,
) -> (Queues, Vec<impl std::future::Future<Output = ()> + use<>>) {
    let mut senders = vec![];
    let mut workers = vec![];
    for r in receivers {
        metrics.init_receiver(&r.name);
        let (tx, rx) = mpsc::channel(capacity);
        senders.push(tx);
        workers.push(worker(
            r.clone(),
            rx,
            client.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let names = receivers.iter().map(|r| r.name.clone()).collect();
    (
        Queues {
            senders,
            names,
            metrics,
        },
        workers,
    )
}

async fn worker(
    r: Receiver,
    mut rx: mpsc::Receiver<Job>,
    client: reqwest::Client,
    metrics: RulesMetrics,
    shutdown: CancellationToken,
) {
    let gauge = metrics
        .queue_length
        .get_or_create(&ReceiverLabels {
            receiver: r.name.clone(),
        })
        .clone();
    let mut deadline: Option<Instant> = None;
    loop {
        let job = match deadline {
            None => tokio::select! {
                j = rx.recv() => j,
                _ = shutdown.cancelled() => {
                    deadline = Some(Instant::now() + FLUSH);
                    continue;
                }
            },
            Some(_) => rx.try_recv().ok(),
        };
        let Some(job) = job else { break };
        gauge.dec();
        let ok = deliver(&r, &client, &job, deadline, &shutdown).await;
        metrics.notified(
            &r.name,
            if ok {
                NotificationResult::Success
            } else {
                NotificationResult::Failure
            },
        );
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let left = rx.len();
            if left > 0 {
                warn!(receiver = %r.name, left, "shutdown: notifications not flushed in time");
            }
            break;
        }
    }
}

enum Outcome {
    Done,
    Retry(Option<Duration>),
    GiveUp(String),
}

/// Sends one job with retries; true when the receiver accepted it.
async fn deliver(
    r: &Receiver,
    client: &reqwest::Client,
    job: &Job,
    mut deadline: Option<Instant>,
    shutdown: &CancellationToken,
) -> bool {
    for attempt in 0..r.max_attempts {
        if deadline.is_none() && shutdown.is_cancelled() {
            deadline = Some(Instant::now() + FLUSH);
        }
        let timeout = match deadline {
            Some(d) => r.timeout.min(d.saturating_duration_since(Instant::now())),
            None => r.timeout,
        };
        if timeout.is_zero() {
            return false;
        }
        let outcome = attempt_once(r, client, job, timeout).await;
        let wait = match outcome {
            Outcome::Done => return true,
            Outcome::GiveUp(why) => {
                warn!(receiver = %r.name, %why, "notification refused; not retrying");
                return false;
            }
            Outcome::Retry(after) => {
                let exp = BACKOFF_BASE
                    .saturating_mul(1 << attempt.min(16))
                    .min(BACKOFF_CAP);
                let jitter = Duration::from_secs_f64(rand::random::<f64>() * exp.as_secs_f64());
                after.map_or(jitter, |a| a.min(BACKOFF_CAP * 2))
            }
        };
        if attempt + 1 == r.max_attempts {
            break;
        }
        debug!(receiver = %r.name, attempt, ?wait, "retrying notification");
        let sleep_until = Instant::now() + wait;
        if deadline.is_some_and(|d| sleep_until >= d) {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(sleep_until) => {}
            _ = shutdown.cancelled(), if deadline.is_none() => {
                deadline = Some(Instant::now() + FLUSH);
            }
        }
    }
    warn!(receiver = %r.name, attempts = r.max_attempts, "notification not delivered");
    false
}

async fn attempt_once(
    r: &Receiver,
    client: &reqwest::Client,
    job: &Job,
    timeout: Duration,
) -> Outcome {
    // `url_file` and `signing_secret_file` as they are now (see `config::watched`).
    let url = r.url.current();
    let mut req = client
        .post(url.expose())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(job.body.clone());
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.expose());
    }
    if let Some(key) = r.signing_key.as_ref().map(|k| k.get()) {
        let ts = super::now_ms() / 1000;
        req = req
            .header("webhook-id", &job.id)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                signing::sign(&key, &job.id, ts, &job.body),
            );
    }
    match req.send().await {
        Ok(resp) => {
            let s = resp.status();
            if s.is_success() {
                // PagerDuty answers 202; Alertmanager 200. Both are success.
                Outcome::Done
            } else if s.as_u16() == 429 || s.is_server_error() {
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, std::time::SystemTime::now()));
                Outcome::Retry(after)
            } else {
                Outcome::GiveUp(format!(
                    "HTTP {s}{}",
                    if r.kind == ReceiverKind::Alertmanager {
                        " from Alertmanager"
                    } else {
                        ""
                    }
                ))
            }
        }
        // Network errors and timeouts: the URL may carry a token, so log the kind only.
        Err(e) => {
            debug!(receiver = %r.name, timeout = e.is_timeout(), connect = e.is_connect(), "notification attempt failed");
            Outcome::Retry(None)
        }
    }
}
