//! Real sockets on loopback: slow headers, slow bodies, and a slowloris flood from several
//! addresses against the caps.

use std::net::IpAddr;
use std::time::Instant;

use axum::Extension;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;
use crate::extract::ApiBody;

fn session(header_timeout: Duration) -> Session {
    Session {
        header_timeout,
        idle: Duration::from_secs(30),
        body_rate: MinRate {
            grace: Duration::from_millis(300),
            bytes_per_second: 1000,
        },
    }
}

/// Serves a small app on loopback under these caps; answers its address.
async fn serve(max: usize, per_address: usize, session: Session) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/prove",
            get(|Extension(connection): Extension<Connection>| async move {
                connection.0.prove();
                "proven"
            }),
        )
        .route(
            "/echo",
            post(|ApiBody(body): ApiBody| async move { body.len().to_string() }),
        );
    let admission = Admission::new(max, per_address);
    tokio::spawn(run(
        listener,
        admission,
        app,
        session,
        std::future::pending(),
    ));
    addr
}

/// A connection to `server` from the loopback address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(server).await
}

/// Whether the server closed `stream` within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `request` on a fresh connection from `from`; the answer's first bytes.
async fn ask(from: &str, server: SocketAddr, request: &str) -> std::io::Result<String> {
    let mut stream = connect_from(from, server).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn headers_trickling_in_are_cut_at_the_deadline_though_bytes_keep_coming() {
    let server = serve(16, 16, session(Duration::from_millis(600))).await;
    let mut stream = connect_from("127.0.0.1", server).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..30 {
        // A header line every 100 ms: never idle, never done.
        if stream
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
            || closed_within(&mut stream, Duration::from_millis(100)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after 3 s of trickled headers");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_deadline() {
    let server = serve(16, 16, session(Duration::from_millis(400))).await;
    let mut silent = connect_from("127.0.0.1", server).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_body_under_the_minimum_rate_is_answered_408_as_json() {
    let server = serve(16, 16, session(Duration::from_secs(5))).await;
    let mut stream = connect_from("127.0.0.1", server).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    // 10 bytes every 100 ms is 100 bytes per second, a tenth of the minimum.
    let mut answer = String::new();
    for _ in 0..40 {
        if stream.write_all(&[b'x'; 10]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}

#[tokio::test]
async fn a_body_keeping_up_is_taken_whole() {
    let server = serve(16, 16, session(Duration::from_secs(5))).await;
    let answer = ask(
        "127.0.0.1",
        server,
        &format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        ),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("5000"), "{answer}");
}

/// Holds `count` connections from `from`, each sending a header line every 200 ms, until the
/// task is aborted; re-opens those the server closes.
fn slowloris(from: &'static str, server: SocketAddr, count: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut open: Vec<TcpStream> = Vec::new();
        loop {
            while open.len() < count {
                match connect_from(from, server).await {
                    Ok(mut stream) => {
                        let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\n").await;
                        open.push(stream);
                    }
                    Err(_) => break,
                }
            }
            let mut alive = Vec::with_capacity(open.len());
            for mut stream in open.drain(..) {
                if stream.write_all(b"X-Slow: y\r\n").await.is_ok() {
                    alive.push(stream);
                }
            }
            open = alive;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_flood_from_several_addresses_never_keeps_out_a_caller_from_elsewhere() {
    // Four addresses each stay under their share (16) but together hold more than the cap
    // (40); the header deadline is long, so only eviction makes room.
    let server = serve(40, 16, session(Duration::from_secs(60))).await;
    let flood: Vec<_> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .into_iter()
        .map(|from| slowloris(from, server, 14))
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A caller that proves itself keeps its connection through the flood.
    let mut kept = connect_from("127.0.0.6", server).await.unwrap();
    kept.write_all(b"GET /prove HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("proven"));

    for round in 0..15 {
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(1), ask("127.0.0.1", server, HEALTH))
            .await
            .unwrap_or_else(|_| panic!("round {round}: /healthz took over a second"))
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "round {round}: {answer}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = tokio::time::timeout(Duration::from_secs(1), kept.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the proven connection was held up"))
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for attacker in flood {
        attacker.abort();
    }
}
