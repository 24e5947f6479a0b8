//! An HTTP server on loopback answering Coinbase Exchange's
//! `GET /products/{id}/candles?granularity=G&start=ISO&end=ISO` in the exact
//! format: a JSON array of `[time, low, high, open, close, volume]`, newest
//! first, no row for empty intervals (every minute whose index % 7 == 3).
//! The first request of every window gets a 429 or a 503.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The candle the server reports for a minute start `t` (seconds):
/// (open, high, low, close, volume).
pub fn candle(t: i64) -> (f64, f64, f64, f64, f64) {
    let open = 40_000.0 + (t % 86_400) as f64 / 60.0 * 0.5;
    (
        open,
        open + 3.0,
        open - 2.5,
        open + 1.25,
        0.5 + (t % 600) as f64 / 600.0,
    )
}

/// Whether the minute starting at `t` had trades.
pub fn has_candle(t: i64) -> bool {
    (t / 60) % 7 != 3
}

/// Requests the server saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Request times, from the server's start.
    pub at: Vec<Duration>,
    /// 429 answers given.
    pub rate_limited: usize,
    /// 503 answers given.
    pub unavailable: usize,
}

/// A running server; stops on drop.
pub struct CandlesServer {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

impl CandlesServer {
    /// Starts the server.
    pub fn start() -> CandlesServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let first = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let started = Instant::now();
        {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (seen, first) = (Arc::clone(&seen), Arc::clone(&first));
                            std::thread::spawn(move || {
                                let _ = serve(stream, &seen, &first, started);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
        }
        CandlesServer { port, stop, seen }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server saw.
    pub fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for CandlesServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn parse_iso(text: &str) -> Option<i64> {
    let date = time::Date::parse(
        text.get(0..10)?,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let seconds = |r: std::ops::Range<usize>| text.get(r).and_then(|v| v.parse::<i64>().ok());
    Some(
        date.midnight().assume_utc().unix_timestamp()
            + seconds(11..13)? * 3600
            + seconds(14..16)? * 60
            + seconds(17..19)?,
    )
}

fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Seen>,
    first: &Mutex<HashMap<String, usize>>,
    started: Instant,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte)? == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let attempt = {
        let mut first = first
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        let n = first.entry(target.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let mut respond = |status: &str, body: &str| {
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if let Ok(mut seen) = seen.lock() {
        seen.at.push(started.elapsed());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if !(path.starts_with("/products/") && path.ends_with("/candles")) {
        return respond("404 Not Found", r#"{"message":"NotFound"}"#);
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    let (Some(g), Some(start), Some(end)) = (
        param("granularity").and_then(|g| g.parse::<i64>().ok()),
        param("start").and_then(|s| parse_iso(&s)),
        param("end").and_then(|s| parse_iso(&s)),
    ) else {
        return respond("400 Bad Request", r#"{"message":"bad query"}"#);
    };
    // Every window's first request fails: 429 or 503, alternating by the
    // window's start hour, so both are exercised deterministically.
    if attempt == 1 {
        let rate_limited = (start / 3600) % 2 == 0;
        if let Ok(mut seen) = seen.lock() {
            if rate_limited {
                seen.rate_limited += 1;
            } else {
                seen.unavailable += 1;
            }
        }
        return if rate_limited {
            respond(
                "429 Too Many Requests",
                r#"{"message":"Public rate limit exceeded"}"#,
            )
        } else {
            respond("503 Service Unavailable", r#"{"message":"try again"}"#)
        };
    }
    if (end - start) / g + 1 > 300 {
        return respond(
            "400 Bad Request",
            r#"{"message":"granularity too small for the requested time range"}"#,
        );
    }
    let mut rows = Vec::new();
    let mut t = end - end.rem_euclid(g);
    while t >= start {
        if has_candle(t) {
            let (open, high, low, close, volume) = candle(t);
            rows.push(format!("[{t},{low},{high},{open},{close},{volume}]"));
        }
        t -= g;
    }
    respond("200 OK", &format!("[{}]", rows.join(",")))
}
