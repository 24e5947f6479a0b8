//! A fault-injecting HTTP proxy on loopback, in front of a real server.
//!
//! One request per connection (`Connection: close`). The first request for
//! each path gets a fault chosen from the path's hash — 503 with
//! `Retry-After: 0`, a reset, a truncated body, a stall — and later requests
//! pass through, so every fault is recoverable by retrying. Paths containing
//! the "poison" suffix get their body bytes flipped on every request, which
//! only a checksum can catch.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults injected, by kind, for assertions.
#[derive(Debug, Default, Clone)]
pub struct FaultCounts {
    /// 503 answers.
    pub unavailable: usize,
    /// Connections closed without an answer.
    pub resets: usize,
    /// Bodies cut in half.
    pub truncated: usize,
    /// Answers delayed.
    pub stalled: usize,
    /// Bodies corrupted.
    pub poisoned: usize,
}

/// A running proxy; stops on drop.
pub struct FaultyProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<FaultCounts>>,
}

impl FaultyProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:port`); paths ending with
    /// `poison` get corrupted bodies every time.
    pub fn start(upstream: String, poison: &str) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(FaultCounts::default()));
        let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let poison = poison.to_owned();
        {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (upstream, seen, counts, poison) = (
                                upstream.clone(),
                                Arc::clone(&seen),
                                Arc::clone(&counts),
                                poison.clone(),
                            );
                            std::thread::spawn(move || {
                                let _ = serve(client, &upstream, &seen, &counts, &poison);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        FaultyProxy { port, stop, counts }
    }

    /// `host:port` of the proxy.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut client: TcpStream,
    upstream: &str,
    seen: &Mutex<HashMap<String, usize>>,
    counts: &Mutex<FaultCounts>,
    poison: &str,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = read_head(&mut client)?;
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    // Force one exchange per connection, so each request is judged alone.
    let request: String = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
        .map(|line| format!("{line}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n";
    let attempt = {
        let mut seen = seen.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        let n = seen.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let fault = if attempt == 1 {
        path.bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 5
    } else {
        0
    };
    let count = |f: fn(&mut FaultCounts)| {
        if let Ok(mut c) = counts.lock() {
            f(&mut c);
        }
    };
    match fault {
        1 => {
            count(|c| c.unavailable += 1);
            client.write_all(b"HTTP/1.1 503 Slow Down\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        2 => {
            count(|c| c.resets += 1);
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    if path.ends_with(poison) && body_start < response.len() {
        count(|c| c.poisoned += 1);
        for byte in &mut response[body_start..] {
            *byte ^= 0x5a;
        }
    }
    match fault {
        3 if response.len() > body_start + 1 => {
            count(|c| c.truncated += 1);
            let cut = body_start + (response.len() - body_start) / 2;
            client.write_all(&response[..cut])?;
            client.shutdown(Shutdown::Both)
        }
        4 => {
            count(|c| c.stalled += 1);
            std::thread::sleep(Duration::from_millis(300));
            client.write_all(&response)
        }
        _ => client.write_all(&response),
    }
}

fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("request head too large"));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
