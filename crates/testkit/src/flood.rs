//! A cheap load generator for floods: many keep-alive HTTP/1.1 connections
//! driven by one OS thread (a current-thread tokio runtime), so that the
//! client takes little CPU from the Envoy it measures. The blocking twin,
//! one thread per connection, is `load::Load`.

use super::load::Report;
use std::io::{Error, ErrorKind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The Host of request `i` on connection `c`.
pub type HostGen = dyn Fn(usize, u64) -> String + Send + Sync;

/// A run: `conns` connections to 127.0.0.1:`port` for `duration`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub port: u16,
    pub conns: usize,
    /// Requests a second over all connections (open loop: each request is
    /// due at its time whatever the previous answers took, and its latency
    /// counts from then); 0 for each connection as fast as it is answered.
    pub rate: f64,
    pub duration: Duration,
    /// Bounds each request; one past it is an error and its connection is dropped.
    pub timeout: Duration,
    /// The report's class for every request.
    pub class: &'static str,
}

/// Runs `plan` on a thread of its own; join it for the report.
pub fn spawn(plan: Plan, gen: Arc<HostGen>) -> JoinHandle<Report> {
    std::thread::spawn(move || run(plan, gen))
}

/// Runs `plan` on this thread.
pub fn run(plan: Plan, gen: Arc<HostGen>) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(async move {
        let t0 = Instant::now();
        let end = t0 + plan.duration;
        let plan = Arc::new(plan);
        let tasks: Vec<_> =
            (0..plan.conns).map(|c| tokio::spawn(connection(c, plan.clone(), gen.clone(), t0, end))).collect();
        let mut report = Report::default();
        for t in tasks {
            report.merge(t.await.expect("flood connection task panicked"));
        }
        report.elapsed = t0.elapsed();
        report
    })
}

async fn connection(c: usize, plan: Arc<Plan>, gen: Arc<HostGen>, t0: Instant, end: Instant) -> Report {
    let mut r = Report::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    // Connection c's requests are due every `every`, offset so that the
    // connections' requests interleave evenly.
    let every = (plan.rate > 0.0).then(|| Duration::from_secs_f64(plan.conns as f64 / plan.rate));
    let offset = every.map(|e| e.mul_f64(c as f64 / plan.conns as f64)).unwrap_or_default();
    let mut i = 0u64;
    loop {
        let due = match every {
            Some(e) => t0 + offset + e.mul_f64(i as f64),
            None => Instant::now(),
        };
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let host = gen(c, i);
        i += 1;
        let result = match tokio::time::timeout(plan.timeout, request(&mut conn, plan.port, &host, &mut r)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(ErrorKind::TimedOut, format!("no answer in {:?}", plan.timeout))),
        };
        r.requests += 1;
        match result {
            Ok(status) => {
                *r.by_status.entry(status).or_default() += 1;
                *r.by_class.entry(plan.class).or_default().entry(status).or_default() += 1;
                r.latencies_us.push(due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Err(e) => {
                conn = None;
                r.errors += 1;
                if r.error_samples.len() < 5 {
                    r.error_samples.push(format!("{} {host:?}: {e} after {:?}", plan.class, due.elapsed()));
                }
                // Don't spin on a refused port.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    r
}

/// `GET /` on the connection (opened if needed); the status. A reused
/// connection closed under the request is retried once on a new one.
async fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    port: u16,
    host: &str,
    r: &mut Report,
) -> std::io::Result<u16> {
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let reused = conn.is_some();
    match exchange(conn, port, req.as_bytes(), r).await {
        Err(e)
            if reused
                && matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                ) =>
        {
            r.retries += 1;
            exchange(conn, port, req.as_bytes(), r).await
        }
        other => other,
    }
}

async fn exchange(
    conn: &mut Option<BufReader<TcpStream>>,
    port: u16,
    req: &[u8],
    r: &mut Report,
) -> std::io::Result<u16> {
    if conn.is_none() {
        let s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.set_nodelay(true)?;
        *conn = Some(BufReader::new(s));
        r.connections += 1;
    }
    let s = conn.as_mut().ok_or_else(|| invalid("no connection"))?;
    s.get_mut().write_all(req).await?;
    let result = read_response(s).await;
    if !matches!(result, Ok((_, true))) {
        *conn = None;
    }
    result.map(|(status, _)| status)
}

const MAX_BODY: u64 = 1 << 20;

fn invalid(m: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidData, m.into())
}

/// Reads one response, discarding its body: the status and whether the
/// connection can carry another request.
async fn read_response<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if s.read_line(&mut line).await? == 0 {
        return Err(Error::new(ErrorKind::UnexpectedEof, "closed before the status line"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    for _ in 0..200 {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Err(invalid("closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            let body = match (chunked, length) {
                (true, _) => skip_chunks(s).await,
                (false, Some(n)) if n <= MAX_BODY => skip(s, n).await,
                (false, Some(_)) => Err(invalid("body too large")),
                (false, None) if status >= 200 && status != 204 && status != 304 => {
                    keep = false;
                    skip_to_end(s).await
                }
                (false, None) => Ok(()),
            };
            return body.map(|()| (status, keep));
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value.eq_ignore_ascii_case("close");
        }
    }
    Err(invalid("too many headers"))
}

async fn skip<S: AsyncRead + Unpin>(s: &mut BufReader<S>, n: u64) -> std::io::Result<()> {
    match tokio::io::copy(&mut (&mut *s).take(n), &mut tokio::io::sink()).await? {
        got if got == n => Ok(()),
        _ => Err(Error::new(ErrorKind::UnexpectedEof, "closed in the body")),
    }
}

/// A body that lasts until the connection closes.
async fn skip_to_end<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> std::io::Result<()> {
    tokio::io::copy(&mut (&mut *s).take(MAX_BODY), &mut tokio::io::sink()).await.map(|_| ())
}

async fn skip_chunks<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> std::io::Result<()> {
    let mut line = String::new();
    let mut total = 0u64;
    loop {
        line.clear();
        s.read_line(&mut line).await?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if s.read_line(&mut line).await? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        total += size;
        if total > MAX_BODY {
            return Err(invalid("body too large"));
        }
        skip(s, size + 2).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &'static [u8]) -> std::io::Result<(u16, bool)> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(read_response(&mut BufReader::new(bytes)))
    }

    #[test]
    fn reads_the_bodies_envoy_sends() {
        assert_eq!(read(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc").ok(), Some((200, true)));
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(read(chunked).ok(), Some((503, true)));
        assert_eq!(read(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").ok(), Some((200, false)));
        assert_eq!(read(b"HTTP/1.1 200 OK\r\n\r\nuntil close").ok(), Some((200, false)));
    }

    #[test]
    fn refuses_what_is_not_a_response() {
        assert!(read(b"").is_err());
        assert!(read(b"garbage\r\n\r\n").is_err());
        assert!(read(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(read(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").is_err());
    }
}
