//! Stopping a server within a deadline: [`serve_with_deadline`].

use std::future::Future;
use std::time::Duration;

use axum::Router;

use super::listener::ConnectionLimits;

/// [`super::serve`] with a deadline on the goodbye: once `shutdown` completes, new connections
/// are refused and the requests in flight may finish, for at most `deadline`; then this
/// returns anyway, and connections still open are cut when the runtime stops (the `restjwt`
/// server returns from `main`). Returns at once when every request has finished earlier.
pub async fn serve_with_deadline(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    deadline: Duration,
) -> std::io::Result<()> {
    serve_hardened(
        listener,
        app,
        shutdown,
        ConnectionLimits::default(),
        deadline,
    )
    .await
}

/// [`serve_with_deadline`] within `limits` (the `restjwt` server's: header, body and idle
/// timeouts, and the connection cap, from the settings).
pub async fn serve_hardened(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
    deadline: Duration,
) -> std::io::Result<()> {
    let (started, mut stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = started.send(true);
    };
    let server = super::listener::serve_limited(listener, app, signal, limits);
    let expired = async move {
        // The sender lives inside the server future, so this never ends while it runs unless
        // the signal came.
        if stopping.wait_for(|stopping| *stopping).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(deadline).await;
    };
    tokio::select! {
        served = server => served,
        () = expired => {
            tracing::warn!(
                deadline_secs = deadline.as_secs_f64(),
                "requests still running at the shutdown deadline: cut off"
            );
            Ok(())
        }
    }
}
