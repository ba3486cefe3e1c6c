//! One span, one set of metrics and one log line per request, and its request id.
//!
//! The span (`request`, target `restjwt::http`, level DEBUG) carries the method, the matched
//! route, and the request id, so everything logged while the request runs names them; it is
//! DEBUG because creating and entering a span on every request costs a measurable share of a
//! token check, so the lines below carry the same three fields themselves. The id is
//! the client's `X-Request-Id` when it is a plain token of at most 128 characters (a proxy's
//! id), otherwise a new UUID; either way it is returned in `X-Request-Id`. When the answer is
//! ready the line is written at the level its status deserves: ERROR for 5xx; INFO for 401,
//! 403 and 429, with the reason the responder put on the response
//! ([`crate::telemetry::RefusalReason`]); DEBUG for the rest (`RUST_LOG=restjwt::http=debug`
//! for an access log). Headers, bodies and query strings are never logged: they hold tokens
//! and passwords.
//!
//! A plain tower layer, like [`super::drf::DrfLayer`]: `middleware::from_fn` clones and boxes
//! the inner service per request, which costs more than the work here.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tracing::Instrument;

use crate::telemetry::{HTTP_REQUEST_DURATION, RefusalReason};

/// The request id header, read and answered.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-given request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// Traces every request of the routes it wraps: [`super::app`] applies it; an app of one's own
/// can add it to its router with `.layer(restjwt::api::TraceLayer::default())`. Install the
/// metrics recorder (if any) before the first request: the histogram handles are kept.
#[derive(Debug, Clone, Default)]
pub struct TraceLayer {
    histograms: Arc<Histograms>,
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            histograms: Arc::clone(&self.histograms),
        }
    }
}

/// The service [`TraceLayer`] makes.
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    histograms: Arc<Histograms>,
}

/// The latency histogram of each method, status and route, kept once made: registering the
/// labels with the recorder on every request (three labels hashed, two strings allocated, the
/// recorder's map locked) was a tenth of a token check.
#[derive(Debug, Default)]
struct Histograms(RwLock<HashMap<(&'static str, u16), RouteHistograms>>);

/// The histograms of one method and status, by matched route.
type RouteHistograms = HashMap<Box<str>, metrics::Histogram>;

impl Histograms {
    fn record(&self, method: &'static str, route: &str, status: StatusCode, seconds: f64) {
        let key = (method, status.as_u16());
        {
            let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(histogram) = known.get(&key).and_then(|routes| routes.get(route)) {
                histogram.record(seconds);
                return;
            }
        }
        let labels = vec![
            metrics::Label::new("method", method),
            metrics::Label::new("route", route.to_owned()),
            metrics::Label::new("status", status.as_str().to_owned()),
        ];
        let histogram = metrics::histogram!(HTTP_REQUEST_DURATION, labels);
        histogram.record(seconds);
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        known
            .entry(key)
            .or_default()
            .insert(route.into(), histogram);
    }
}

impl<S> tower::Service<Request> for Trace<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let request_id = request_id(&req);
        let method = method_label(req.method());
        // The matched path is shared (an `Arc<str>` inside): a clone allocates nothing.
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        let span = tracing::debug_span!(
            target: "restjwt::http",
            "request",
            method = %method,
            route = %route,
            request_id = %request_id.to_str().unwrap_or_default(),
        );
        span.in_scope(|| tracing::debug!(target: "restjwt::http", "request started"));
        let answer = self.inner.call(req).instrument(span.clone());
        let histograms = Arc::clone(&self.histograms);
        Box::pin(async move {
            let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
            let mut response = answer.await?;
            let latency = start.elapsed();
            let status = response.status();
            let _entered = span.enter();
            let id = request_id.to_str().unwrap_or_default();
            log(&response, method, route, id, latency.as_secs_f64() * 1000.0);
            histograms.record(method, route, status, latency.as_secs_f64());
            response.headers_mut().insert(REQUEST_ID, request_id);
            Ok(response)
        })
    }
}

/// The client's request id when it is safe to log and echo, else a new one.
fn request_id(req: &Request) -> HeaderValue {
    let given = req.headers().get(&REQUEST_ID).filter(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
    });
    match given {
        Some(value) => value.clone(),
        None => {
            // The thread's RNG, not a system call per request; an id needs no secrecy.
            let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
                .unwrap_or(HeaderValue::from_static("-"))
        }
    }
}

/// The method as a label of few values: extension methods are `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

fn log(response: &Response, method: &str, route: &str, request_id: &str, latency_ms: f64) {
    let status = response.status();
    let code = status.as_u16();
    if status.is_server_error() {
        tracing::error!(
            target: "restjwt::http",
            method, route, request_id, status = code, latency_ms,
            "request failed"
        );
    } else if matches!(code, 401 | 403 | 429) {
        let reason = response
            .extensions()
            .get::<RefusalReason>()
            .map_or("", |r| r.0.as_ref());
        tracing::info!(
            target: "restjwt::http",
            method, route, request_id, status = code, latency_ms, reason,
            "request refused"
        );
    } else {
        tracing::debug!(
            target: "restjwt::http",
            method, route, request_id, status = code, latency_ms,
            "request finished"
        );
    }
}
