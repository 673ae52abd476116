//! The REST server under hostile clients: idle floods, slowloris. In-process, on 127.0.0.1.
#![allow(clippy::unwrap_used)] // test support code outside #[test] fns

use axum::Router;
use axum::routing::get;
use pgkeel::api::server::{Limits, serve_with};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(limits: Limits) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = Router::new().route("/health", get(|| async { "ok" }));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_with(listener, router, limits, async move {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx)
}

/// One GET /health on a fresh connection: the status code and how long it took.
async fn health(addr: &str) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t.elapsed())
}

/// True once the server closed `s` (EOF or reset) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn an_idle_flood_cannot_keep_a_health_check_out() {
    let limits = Limits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(30),
    };
    let (addr, _stop) = start(limits).await;
    // Far more idle connections than the cap, held open and silent.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let (code, took) = health(&addr).await;
    assert_eq!(code, 200);
    assert!(
        took < Duration::from_millis(500),
        "health check took {took:?}"
    );
    // The oldest idle connections were closed to make room: the server holds at most the cap.
    let mut closed = 0;
    for s in idle.iter_mut() {
        if closed_within(s, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 200 - 16,
        "only {closed} of 200 idle connections were closed"
    );
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_head_is_closed() {
    let limits = Limits {
        max_connections: 16,
        header_read_timeout: Duration::from_millis(300),
    };
    let (addr, _stop) = start(limits).await;
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "the slow connection was not closed"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert_eq!(health(&addr).await.0, 200);
}
