//! A TCP proxy that models a distant object store for benchmarks: every
//! connection is capped at a bandwidth, and each response waits a
//! first-byte latency. `benches/s3/run.py` puts it in front of moto.
//!
//! ```text
//! cargo run --release --example latency_proxy -- LISTEN UPSTREAM MB_PER_S LATENCY_MS
//! ```
//! prints `listening on HOST:PORT` once ready; runs until killed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    println!("listening on {}", listener.local_addr().expect("addr"));
    std::io::stdout().flush().ok();
    for client in listener.incoming().flatten() {
        let upstream = upstream.clone();
        std::thread::spawn(move || {
            if let Ok(up) = TcpStream::connect(&upstream) {
                connection(client, up, rate, latency);
            }
        });
    }
}

/// When the client last sent request bytes: a response that follows them
/// waits `latency` from then before its first byte.
type LastRequest = Arc<Mutex<Option<Instant>>>;

fn connection(client: TcpStream, up: TcpStream, rate: f64, latency: Duration) {
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let last: LastRequest = Arc::new(Mutex::new(None));
    let (mut c_read, mut u_write) = (
        client.try_clone().expect("clone"),
        up.try_clone().expect("clone"),
    );
    let l = last.clone();
    let requests = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = c_read.read(&mut buf) {
            if n == 0 {
                break;
            }
            l.lock().expect("lock").get_or_insert_with(Instant::now);
            if u_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (up, client);
    let mut buf = vec![0u8; 64 << 10];
    let mut start = Instant::now();
    let mut sent = 0f64;
    while let Ok(n) = u_read.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Some(asked) = last.lock().expect("lock").take() {
            let due = asked + latency;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // A new response: the bucket starts empty (no credit saved
            // while the connection sat idle in a pool).
            start = Instant::now();
            sent = 0.0;
        }
        // Token bucket over the response: never ahead of `rate`.
        sent += n as f64;
        let due = start + Duration::from_secs_f64(sent / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = requests.join();
}
