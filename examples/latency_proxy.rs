//! An HTTP proxy that models a distant object store for benchmarks: every
//! client connection is capped at a bandwidth, and each response waits a
//! first-byte latency. `benches/s3/run.py` puts it in front of moto.
//!
//! ```text
//! cargo run --release --example latency_proxy -- LISTEN UPSTREAM MB_PER_S LATENCY_MS
//! ```
//! prints `listening on HOST:PORT` once ready; runs until killed. With
//! `PROXY_LOG=FILE` it appends one line per request: when it was asked and
//! when its last byte left (Unix time, ms), the request and the answer's size.
//!
//! moto is Python: on a small machine its CPU cost per ranged GET (about
//! 0.2 s for 8 MiB) competes with prep's own and would be what is measured.
//! So answers to GET/HEAD requests are kept (keyed by method, target and
//! Range) and served again from memory at the capped rate: after a warm-up
//! run, a benchmark measures the modelled link, not the test server. That
//! is only right for objects nobody changes: with `PROXY_CACHE=0` every
//! request goes to the server (for runs that write, e.g. an S3 output,
//! whose `_LOCK` a kept answer would show stale).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Cache = Arc<Mutex<HashMap<String, Arc<Vec<u8>>>>>;

/// Where requests are logged (`PROXY_LOG`).
type Log = Option<Arc<Mutex<std::fs::File>>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: latency_proxy LISTEN UPSTREAM MB_PER_S LATENCY_MS");
        std::process::exit(2);
    }
    let listener = TcpListener::bind(&args[1]).expect("bind");
    let upstream = args[2].clone();
    let rate: f64 = args[3].parse::<f64>().expect("MB/s") * 1e6;
    let latency = Duration::from_millis(args[4].parse().expect("latency ms"));
    let cache: Cache = Arc::default();
    let keep = std::env::var("PROXY_CACHE").map_or(true, |v| v != "0");
    let log: Log = std::env::var_os("PROXY_LOG").map(|path| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("PROXY_LOG");
        Arc::new(Mutex::new(file))
    });
    println!("listening on {}", listener.local_addr().expect("addr"));
    std::io::stdout().flush().ok();
    for client in listener.incoming().flatten() {
        let (upstream, cache, log) = (upstream.clone(), cache.clone(), log.clone());
        std::thread::spawn(move || {
            let link = Link {
                rate,
                latency,
                log,
                keep,
            };
            let _ = connection(client, &upstream, &link, &cache);
        });
    }
}

/// One request: its head (as sent) and body.
struct Request {
    head: String,
    key: String,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut head = String::new();
    let (mut method, mut target, mut range, mut len) =
        (String::new(), String::new(), String::new(), 0usize);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if head.is_empty() {
            let mut parts = line.split_whitespace();
            method = parts.next().unwrap_or_default().to_string();
            target = parts.next().unwrap_or_default().to_string();
        } else if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = v.trim().to_string(),
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "connection" => continue, // the upstream leg closes itself
                _ => {}
            }
        }
        if line == "\r\n" {
            head.push_str("Connection: close\r\n\r\n");
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let key = match method.as_str() {
        "GET" | "HEAD" => format!("{method} {target} {range}"),
        _ => String::new(), // not cached
    };
    Ok(Some(Request { head, key, body }))
}

/// Sends the request upstream on its own connection; the whole answer.
fn fetch(upstream: &str, req: &Request) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(req.head.as_bytes())?;
    up.write_all(&req.body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    Ok(answer)
}

/// The modelled link and where its requests are logged.
struct Link {
    rate: f64,
    latency: Duration,
    log: Log,
    /// Keep GET/HEAD answers (`PROXY_CACHE`, default on).
    keep: bool,
}

fn connection(
    client: TcpStream,
    upstream: &str,
    link: &Link,
    cache: &Cache,
) -> std::io::Result<()> {
    let (rate, latency) = (link.rate, link.latency);
    client.set_nodelay(true)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut out = client;
    while let Some(req) = read_request(&mut reader)? {
        let asked = Instant::now();
        let cached = (link.keep && !req.key.is_empty())
            .then(|| cache.lock().expect("cache").get(&req.key).cloned())
            .flatten();
        let answer = match cached {
            Some(a) => a,
            None => {
                let a = Arc::new(fetch(upstream, &req)?);
                if link.keep
                    && !req.key.is_empty()
                    && (a.starts_with(b"HTTP/1.1 2") || a.starts_with(b"HTTP/1.0 2"))
                {
                    cache
                        .lock()
                        .expect("cache")
                        .insert(req.key.clone(), a.clone());
                }
                a
            }
        };
        if let Some(wait) = (asked + latency).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Token bucket over the response: never ahead of `rate`.
        let start = Instant::now();
        for (k, piece) in answer.chunks(64 << 10).enumerate() {
            let due = start + Duration::from_secs_f64((k * (64 << 10)) as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            out.write_all(piece)?;
        }
        if let Some(log) = &link.log {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let ms = |t: Instant| (now - Instant::now().duration_since(t)).as_secs_f64() * 1e3;
            let line = format!(
                "{:.1} {:.1} {} {}\n",
                ms(asked),
                ms(Instant::now()),
                req.key.trim(),
                answer.len()
            );
            log.lock().expect("log").write_all(line.as_bytes())?;
        }
        // The answers are HTTP/1.1 with Connection: close from moto's side;
        // keep the client's connection for its next request only if the
        // answer says how long it is.
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(0);
        let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
        if !head.contains("content-length:") || head.contains("transfer-encoding: chunked") {
            break;
        }
    }
    Ok(())
}
