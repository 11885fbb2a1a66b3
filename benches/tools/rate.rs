//! Open-loop, fixed-rate HTTP/1.1 load for the latency part of the key benchmark (the role of
//! wrk2, which this machine cannot install).
//!
//! Usage: `bench_rate ADDR RATE SECONDS CONNECTIONS METHOD PATH [JSON_BODY]`; with `GH_KEYS` set
//! to a file of keys, `{key}` in the body takes each key of the file in turn.
//!
//! Request `i` is due at `start + i / RATE`, on the microsecond: one thread spins on
//! `epoll_wait(0)` (the generator owns its core) and sends each due request on a free keep-alive
//! connection, or queues it until one frees. Latency is counted from when the request was *due*,
//! so a stalled server is charged for every request it made wait (no coordinated omission).
//!
//! Why not oha's `-q` here: oha releases requests from a tokio timer, which fires on millisecond
//! ticks, and its "latency correction" starts the clock at that wake-up. At 40 000 req/s every
//! tick releases a burst of ~40 requests at once, so its p99 measures the burst and oha's own
//! handling of it (≈1.1–1.6 ms for a hello-world here), not the server.
//!
//! The first second is not recorded (connections and caches warm up). Prints the achieved rate
//! and the latency percentiles in microseconds; non-2xx answers and errors are counted. With
//! `GH_TIMELINE=1` it also prints, for every 100 ms window whose slowest answer took over 1 ms,
//! the window's start (seconds from the start of recording) and its slowest latency: when the
//! stalls come, to set beside the server's periodic work.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Conn {
    stream: TcpStream,
    /// When the request in flight was due; `None` when the connection is free.
    due: Option<Instant>,
    buf: Vec<u8>,
}

/// Length of a complete response at the front of `buf`, if it is all there.
fn complete(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + len).then_some(end + len)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        eprintln!("usage: bench_rate ADDR RATE SECONDS CONNECTIONS METHOD PATH [JSON_BODY]");
        std::process::exit(2);
    }
    let addr: SocketAddr = a[1].parse().expect("ADDR");
    let rate: f64 = a[2].parse().expect("RATE");
    let secs: f64 = a[3].parse().expect("SECONDS");
    let n_conns: usize = a[4].parse().expect("CONNECTIONS");
    let build = |body: &str| {
        match a.get(7) {
        Some(_) => format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            a[5], a[6], body.len()
        ),
        None => format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n\r\n", a[5], a[6]),
    }
    .into_bytes()
    };
    // `{key}` in the body takes each key of the file GH_KEYS in turn (the file's order).
    let body = a.get(7).cloned().unwrap_or_default();
    let requests: Vec<Vec<u8>> = match std::env::var("GH_KEYS") {
        Ok(path) if body.contains("{key}") => std::fs::read_to_string(path)
            .expect("GH_KEYS")
            .lines()
            .map(|k| build(&body.replace("{key}", k.trim())))
            .collect(),
        _ => vec![build(&body)],
    };
    let mut next_request = 0usize;
    let mut poll = Poll::new().expect("epoll");
    let mut conns: Vec<Conn> = (0..n_conns)
        .map(|i| {
            let s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.set_nonblocking(true).expect("nonblocking");
            let mut stream = TcpStream::from_std(s);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .expect("register");
            Conn {
                stream,
                due: None,
                buf: Vec::with_capacity(4096),
            }
        })
        .collect();
    let mut free: Vec<usize> = (0..n_conns).rev().collect();
    let mut backlog: VecDeque<Instant> = VecDeque::new();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut non2xx, mut errors, mut done) = (0u64, 0u64, 0u64);
    let mut events = Events::with_capacity(1024);
    let nanos_per = 1e9 / rate;
    let start = Instant::now();
    let record_from = start + Duration::from_secs(1);
    let stop = start + Duration::from_secs_f64(1.0 + secs);
    let mut sent: u64 = 0;
    let mut chunk = [0u8; 16384];
    let timeline = std::env::var_os("GH_TIMELINE").is_some();
    // Slowest latency (µs) among answers to requests due in each 100 ms window.
    let mut slowest: Vec<u64> = Vec::new();

    let mut send = |c: &mut Conn, due: Instant, errors: &mut u64| -> bool {
        let request = &requests[next_request];
        next_request = (next_request + 1) % requests.len();
        match c.stream.write(request) {
            Ok(n) if n == request.len() => {
                c.due = Some(due);
                true
            }
            _ => {
                *errors += 1;
                false
            }
        }
    };

    loop {
        let now = Instant::now();
        // Release every request that is due by now, each on a free connection or queued.
        if now < stop {
            loop {
                let due = start + Duration::from_nanos((sent as f64 * nanos_per) as u64);
                if due > now {
                    break;
                }
                sent += 1;
                match free.pop() {
                    Some(i) => {
                        if !send(&mut conns[i], due, &mut errors) {
                            free.push(i);
                        }
                    }
                    None => backlog.push_back(due),
                }
            }
        }
        if now >= stop && free.len() == n_conns {
            break;
        }
        if now >= stop + Duration::from_secs(5) {
            errors += (n_conns - free.len()) as u64;
            break;
        }
        poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &mut conns[i];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        errors += 1;
                        break;
                    }
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            while let Some(len) = complete(&c.buf) {
                let at = Instant::now();
                if let Some(due) = c.due.take() {
                    if due >= record_from {
                        let us = at.saturating_duration_since(due).as_micros() as u64;
                        hist.record(us.max(1)).ok();
                        if timeline {
                            let w = (due.duration_since(record_from).as_millis() / 100) as usize;
                            if slowest.len() <= w {
                                slowest.resize(w + 1, 0);
                            }
                            slowest[w] = slowest[w].max(us);
                        }
                        done += 1;
                        if !c.buf.starts_with(b"HTTP/1.1 2") {
                            non2xx += 1;
                        }
                    }
                }
                c.buf.drain(..len);
                match backlog.pop_front() {
                    Some(due) => {
                        if !send(c, due, &mut errors) {
                            break;
                        }
                    }
                    None => free.push(i),
                }
            }
        }
    }
    let measured = stop.duration_since(record_from).as_secs_f64();
    println!(
        "rate {:.0} req/s due, {:.0} req/s answered, {} answered, {} non-2xx, {} errors",
        rate,
        done as f64 / measured,
        done,
        non2xx,
        errors
    );
    println!(
        "latency from due time, µs: p50 {} p90 {} p99 {} p99.9 {} max {}",
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.90),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max()
    );
    for (w, us) in slowest.iter().enumerate().filter(|(_, us)| **us > 1_000) {
        println!("stall at {:.1} s: slowest {us} µs", w as f64 / 10.0);
    }
}
