//! The reads' load loop (Linux): one thread (of tokio's blocking pool) sending the reads over
//! plain HTTP/1.1 connections it drives itself with `epoll`, paced by a `timerfd`.
//!
//! The load generator shares this machine's 2 cores with the server and PostgreSQL, and what
//! it spends on a read is taken from theirs: at half the capacity, the cores were about 80%
//! busy, a third of it the load generator's (tuning step 29). Through tokio and hyper, each
//! read cost it a task, wake-ups of the runtime's threads and a request built and written
//! out anew; here a read is a `write` of bytes copied from a template, one `read` of the answer
//! (parsed by `httparse`) and the loop's share of one `epoll_wait` and one timer, on one
//! thread that sleeps only when nothing is due or answered (tuning step 30).
//!
//! The connections are opened when first needed and kept between runs, the one used last
//! taken first, as the other clients do; each carries one request at a time (no pipelining).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::epoll;

use super::{Sample, Steal};

/// How a run sends its requests.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pace {
    /// `clients` connections for `seconds`, each sending its next request as soon as it has
    /// the answer to the last (a closed loop: the server's capacity).
    Closed { clients: usize, seconds: u64 },
    /// `rate` requests a second for `seconds`, each timed from when it was due, over at most
    /// `connections` connections: a request due while all are busy waits for one, and the
    /// wait counts in its latency.
    Fixed {
        rate: f64,
        seconds: u64,
        connections: usize,
    },
}

/// A client of one server's reads: the connections it keeps between runs.
pub(crate) struct ReadLoop {
    address: SocketAddr,
    /// The server's `host:port`, as the requests' `host` header gives it.
    authority: String,
    /// Open connections between runs, the one used last at the end.
    idle: Mutex<Vec<TcpStream>>,
}

/// Appends the next request's bytes to the buffer it is given; an error fails that request
/// unsent.
pub(crate) type Requests<'a> = dyn FnMut(&mut Vec<u8>) -> Result<(), String> + 'a;

/// What an answer's status and body came to: its units, or the error it gave.
pub(crate) type Answered<'a> = dyn Fn(u16, &[u8]) -> Result<u64, String> + 'a;

/// The epoll token of the pacing timer; a connection's is its index.
const TIMER: u64 = u64::MAX;

/// The most an answer may take: larger ones end the connection as failed.
const MAX_ANSWER: usize = 4 << 20;

/// One connection of a run.
struct Connection {
    stream: TcpStream,
    /// What has come in of the answer awaited.
    answer: Vec<u8>,
    /// When the request awaiting its answer was due (the closed loop: sent); `None`: idle.
    awaiting: Option<Instant>,
}

/// An answer read whole: its status and how many bytes it took.
struct Answer {
    status: u16,
    length: usize,
    body_at: usize,
    close: bool,
}

/// Parses the head of the answer in `buf`: `None` while it is not all in.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let body_at = match response.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(head)) => head,
        Err(err) => return Err(format!("the answer's head: {err}")),
    };
    let (mut content_length, mut close) = (None, false);
    for header in response.headers.iter() {
        let value = || std::str::from_utf8(header.value).unwrap_or_default().trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value()
                    .parse::<usize>()
                    .map_err(|_| format!("content-length {:?}", value()))?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("an answer in transfer-encoding {}", value()));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = value().eq_ignore_ascii_case("close");
        }
    }
    let content_length = content_length.ok_or("an answer without content-length")?;
    let length = body_at + content_length;
    if length > MAX_ANSWER {
        return Err(format!("an answer of {length} bytes"));
    }
    Ok((buf.len() >= length).then(|| Answer {
        status: response.code.unwrap_or_default(),
        length,
        body_at,
        close,
    }))
}

/// Whether an idle connection is still open: nothing to read, its end of stream included.
fn still_open(stream: &TcpStream) -> bool {
    matches!(stream.peek(&mut [0]), Err(err) if err.kind() == ErrorKind::WouldBlock)
}

impl ReadLoop {
    /// A client of the server at `url` (`http://host:port`).
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let (address, authority) = super::server_address(url)?;
        Ok(Self {
            address,
            authority: authority.to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The server's `host:port`.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Runs the reads `pace` says. `request` appends the next request's bytes to the buffer
    /// it is given (an error: that request fails unsent); `answered` says what an answer's
    /// status and body came to (its units, or the error). Blocks the calling thread.
    pub(crate) fn run(
        &self,
        pace: Pace,
        request: &mut Requests<'_>,
        answered: &Answered<'_>,
    ) -> std::io::Result<Sample> {
        let mut run = Run::new(self, pace)?;
        let outcome = run.go(request, answered);
        // What is still open and idle serves the next run: those this run did not take, then
        // those it left idle, the one used last at the end.
        let Run {
            mut connections,
            idle: used,
            kept,
            sample,
            ..
        } = run;
        let used = used
            .iter()
            .filter_map(|&token| connections[token].take())
            .map(|connection| connection.stream);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.extend(kept.into_iter().chain(used));
        outcome.map(|()| sample)
    }
}

/// One run's state.
struct Run<'a> {
    client: &'a ReadLoop,
    pace: Pace,
    epoll: OwnedFd,
    timer: OwnedFd,
    /// By token; `None`: a connection that ended.
    connections: Vec<Option<Connection>>,
    /// The idle connections' tokens, the one used last at the end.
    idle: Vec<usize>,
    /// Connections kept from earlier runs, not yet taken.
    kept: Vec<TcpStream>,
    /// Connections open and not ended.
    open: usize,
    in_flight: usize,
    sample: Sample,
    started: Instant,
    buf: Vec<u8>,
}

impl<'a> Run<'a> {
    fn new(client: &'a ReadLoop, pace: Pace) -> std::io::Result<Self> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        epoll::add(
            &epoll,
            &timer,
            epoll::EventData::new_u64(TIMER),
            epoll::EventFlags::IN,
        )?;
        let kept = std::mem::take(&mut *client.idle.lock().unwrap_or_else(PoisonError::into_inner));
        let now = Instant::now();
        Ok(Self {
            client,
            pace,
            epoll,
            timer,
            connections: Vec::new(),
            idle: Vec::new(),
            kept,
            open: 0,
            in_flight: 0,
            sample: Sample {
                started_at: Some(SystemTime::now()),
                started: Some(now),
                ..Sample::default()
            },
            started: now,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// An idle connection's token: the one used last, else one kept from an earlier run,
    /// else a new one; `None` when `limit` are open.
    fn connection(&mut self, limit: usize) -> Result<Option<usize>, String> {
        if let Some(token) = self.idle.pop() {
            return Ok(Some(token));
        }
        if self.open >= limit {
            return Ok(None);
        }
        // A kept connection the server closed meanwhile (an idle timeout) has its end of
        // stream waiting to be read: left behind, as the other clients leave theirs.
        let kept = loop {
            match self.kept.pop() {
                Some(stream) if still_open(&stream) => break Some(stream),
                Some(_closed) => continue,
                None => break None,
            }
        };
        let stream = match kept {
            Some(stream) => stream,
            None => {
                let stream =
                    TcpStream::connect_timeout(&self.client.address, Duration::from_secs(5))
                        .map_err(|e| format!("connect: {e}"))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| format!("connect: {e}"))?;
                stream
                    .set_nonblocking(true)
                    .map_err(|e| format!("connect: {e}"))?;
                stream
            }
        };
        let token = self.connections.len();
        epoll::add(
            &self.epoll,
            &stream,
            epoll::EventData::new_u64(token as u64),
            epoll::EventFlags::IN,
        )
        .map_err(|e| format!("epoll: {e}"))?;
        self.connections.push(Some(Connection {
            stream,
            answer: Vec::with_capacity(16 << 10),
            awaiting: None,
        }));
        self.open += 1;
        Ok(Some(token))
    }

    /// Ends the connection at `token`, failing the request it awaited with `error`.
    fn end(&mut self, token: usize, error: String) {
        if let Some(connection) = self.connections[token].take() {
            let _ = epoll::delete(&self.epoll, &connection.stream);
            self.open -= 1;
            self.idle.retain(|&t| t != token);
            if let Some(due) = connection.awaiting {
                self.in_flight -= 1;
                self.sample.add(Err(error), due.elapsed());
            }
        }
    }

    /// Sends the next request on the idle connection at `token`, timed from `due`.
    fn send(&mut self, token: usize, due: Instant, request: &mut Requests<'_>) {
        self.buf.clear();
        if let Err(err) = request(&mut self.buf) {
            self.idle.push(token);
            self.sample.add(Err(err), due.elapsed());
            return;
        }
        let Some(connection) = self.connections[token].as_mut() else {
            return;
        };
        connection.awaiting = Some(due);
        self.in_flight += 1;
        // An idle connection's send buffer is empty, and a request is a few hundred bytes.
        match connection.stream.write(&self.buf) {
            Ok(n) if n == self.buf.len() => {}
            Ok(n) => self.end(
                token,
                format!("sent {n} of the request's {} bytes", self.buf.len()),
            ),
            Err(err) => self.end(token, format!("send: {err}")),
        }
    }

    /// Reads what came in on the connection at `token`; returns whether it finished an answer
    /// and left the connection idle.
    fn receive(&mut self, token: usize, scratch: &mut [u8], answered: &Answered<'_>) -> bool {
        let Some(connection) = self.connections[token].as_mut() else {
            return false;
        };
        let read = match connection.stream.read(scratch) {
            Ok(0) => Err("the server closed the connection".to_owned()),
            Ok(n) => Ok(n),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(err) => Err(format!("receive: {err}")),
        };
        let n = match read {
            Ok(n) => n,
            Err(err) => {
                self.end(token, err);
                return false;
            }
        };
        let Some(due) = connection.awaiting else {
            self.end(token, String::new());
            return false;
        };
        connection.answer.extend_from_slice(&scratch[..n]);
        let answer = match parse_answer(&connection.answer) {
            Ok(None) => return false,
            Ok(Some(answer)) => answer,
            Err(err) => {
                self.end(token, err);
                return false;
            }
        };
        let latency = due.elapsed();
        let outcome = answered(
            answer.status,
            &connection.answer[answer.body_at..answer.length],
        );
        let extra = connection.answer.len() > answer.length;
        connection.answer.clear();
        connection.awaiting = None;
        self.in_flight -= 1;
        // A fixed-rate run's timeline: each answered request by its due time in the run.
        if outcome.is_ok() && matches!(self.pace, Pace::Fixed { .. }) {
            let at = due.saturating_duration_since(self.started);
            self.sample.timeline.push((at, latency));
        }
        self.sample.add(outcome, latency);
        if answer.close || extra {
            self.end(token, String::new());
            return false;
        }
        self.idle.push(token);
        true
    }

    fn go(&mut self, request: &mut Requests<'_>, answered: &Answered<'_>) -> std::io::Result<()> {
        let steal = Steal::now();
        let (total, seconds, limit) = match self.pace {
            Pace::Closed { clients, seconds } => (0, seconds, clients),
            Pace::Fixed {
                rate,
                seconds,
                connections,
            } => (
                ((rate * seconds as f64).round() as u64).max(1),
                seconds,
                if connections == 0 {
                    usize::MAX
                } else {
                    connections
                },
            ),
        };
        let deadline = self.started + Duration::from_secs(seconds);
        let (pace, started) = (self.pace, self.started);
        let due = move |n: u64| match pace {
            Pace::Fixed { rate, .. } => started + Duration::from_secs_f64(n as f64 / rate),
            Pace::Closed { .. } => started,
        };
        let closed = matches!(self.pace, Pace::Closed { .. });
        let mut scratch = vec![0u8; 64 << 10];
        let mut events = Vec::with_capacity(256);
        // Fixed rate: the next request to fall due, and those due waiting for a connection.
        let (mut next, mut waiting) = (0u64, VecDeque::new());
        let mut armed = None;
        if closed {
            for _ in 0..limit {
                match self.connection(limit) {
                    Ok(Some(token)) => self.send(token, Instant::now(), request),
                    Ok(None) => break,
                    Err(err) => self.sample.add(Err(err), Duration::ZERO),
                }
            }
        }
        loop {
            let now = Instant::now();
            if !closed {
                while next < total && due(next) <= now {
                    waiting.push_back(due(next));
                    next += 1;
                }
                while let Some(&due) = waiting.front() {
                    match self.connection(limit) {
                        Ok(Some(token)) => self.send(token, due, request),
                        Ok(None) => break,
                        Err(err) => self.sample.add(Err(err), due.elapsed()),
                    }
                    waiting.pop_front();
                }
                if next == total && waiting.is_empty() && self.in_flight == 0 {
                    break;
                }
            } else if self.in_flight == 0 {
                break;
            }
            // Sleeps until the next request falls due or an answer comes in.
            let wake = (!closed && next < total).then(|| due(next));
            let timeout = match wake {
                Some(at) if at <= Instant::now() => Some(rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }),
                Some(at) => {
                    if armed != Some(at) {
                        super::arm_timer(&self.timer, at)?;
                        armed = Some(at);
                    }
                    None
                }
                None => None,
            };
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                timeout.as_ref(),
            ) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
            for event in &events {
                let token = event.data.u64();
                if token == TIMER {
                    let mut expiries = [0u8; 8];
                    let _ = rustix::io::read(&self.timer, &mut expiries);
                    continue;
                }
                let token = token as usize;
                // The closed loop sends its next request on the connection that answered,
                // which `receive` left last among the idle.
                if self.receive(token, &mut scratch, answered)
                    && closed
                    && Instant::now() < deadline
                {
                    self.idle.pop();
                    self.send(token, Instant::now(), request);
                }
            }
            if closed && Instant::now() < deadline {
                // A connection that ended is replaced, to keep `limit` clients.
                while self.in_flight < limit && self.open < limit {
                    match self.connection(limit) {
                        Ok(Some(token)) => self.send(token, Instant::now(), request),
                        Ok(None) => break,
                        Err(err) => {
                            self.sample.add(Err(err), Duration::ZERO);
                            break;
                        }
                    }
                }
            }
        }
        self.sample.elapsed = self.started.elapsed();
        self.sample.steal = Steal::share_since(steal, self.sample.elapsed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A server on a thread per connection answering every request with `answer`, counting
    /// the connections it accepted and keeping every request head it was sent.
    struct TestServer {
        url: String,
        accepted: Arc<AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    /// `close`: the server closes each connection after its first answer, as one closing
    /// idle connections would.
    fn serve(answer: &'static str, close: bool) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (accepted.clone(), heads.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::Relaxed);
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        kept.lock().unwrap().push(head);
                        if writer.write_all(answer.as_bytes()).is_err()
                            || close
                            || answer.contains("connection: close")
                        {
                            return;
                        }
                    }
                });
            }
        });
        TestServer {
            url,
            accepted,
            heads,
        }
    }

    /// A request of `GET /wallet` as user `n`, counting them.
    fn requests(sent: &AtomicUsize) -> impl FnMut(&mut Vec<u8>) -> Result<(), String> + '_ {
        |buffer: &mut Vec<u8>| {
            let n = sent.fetch_add(1, Ordering::Relaxed);
            buffer.extend_from_slice(
                format!("GET /wallet HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {n}\r\n\r\n")
                    .as_bytes(),
            );
            Ok(())
        }
    }

    /// What the servers of most tests answer.
    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

    fn fixed(rate: f64, connections: usize) -> Pace {
        Pace::Fixed {
            rate,
            seconds: 1,
            connections,
        }
    }

    fn ok(status: u16, body: &[u8]) -> Result<u64, String> {
        if status == 200 {
            Ok(1)
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(body)))
        }
    }

    #[test]
    fn an_answer_is_whole_once_its_head_and_content_length_are_in() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        for cut in [0, 10, whole.len() - 4, whole.len() - 1] {
            assert!(
                parse_answer(&whole[..cut]).unwrap().is_none(),
                "{cut} bytes"
            );
        }
        let answer = parse_answer(whole).unwrap().unwrap();
        assert_eq!(
            (
                answer.status,
                answer.length,
                &whole[answer.body_at..answer.length],
                answer.close
            ),
            (200, whole.len(), &b"{}"[..], false)
        );
        let closing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let answer = parse_answer(closing).unwrap().unwrap();
        assert_eq!((answer.status, answer.close), (404, true));
        for (bad, error) in [
            (&b"HTTP/1.1 200 OK\r\n\r\n"[..], "without content-length"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                "transfer-encoding",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
                "content-length",
            ),
            (b"not http\r\n\r\n", "head"),
        ] {
            let err = parse_answer(bad).err().unwrap();
            assert!(err.contains(error), "{err}");
        }
    }

    #[test]
    fn a_fixed_rate_run_answers_every_request_due_over_the_connections_allowed() {
        let server = serve(OK, false);
        let client = ReadLoop::new(&server.url).unwrap();
        let sent = AtomicUsize::new(0);
        let pace = fixed(2_000.0, 4);
        let sample = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(sent.load(Ordering::Relaxed), 2_000);
        assert_eq!(sample.errors(), 0, "{:?}", sample.errors);
        assert_eq!(
            (sample.latencies.len(), sample.timeline.len()),
            (2_000, 2_000)
        );
        // The last request was due 999.5 ms after the first.
        assert!(sample.elapsed >= Duration::from_micros(999_500));
        assert!(server.accepted.load(Ordering::Relaxed) <= 4);
        // Each request went out whole, as the caller wrote it, and once (the connections'
        // threads keep them in the order they ran, not the order they were sent).
        let mut heads = server.heads.lock().unwrap().clone();
        let mut expected: Vec<String> = (0..2_000)
            .map(|n| {
                format!("GET /wallet HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {n}\r\n\r\n")
            })
            .collect();
        heads.sort();
        expected.sort();
        assert_eq!(heads, expected);
        // The next run takes the connections this one left open.
        let before = server.accepted.load(Ordering::Relaxed);
        let pace = fixed(100.0, 4);
        let again = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(again.latencies.len(), 100);
        assert_eq!(server.accepted.load(Ordering::Relaxed), before);
    }

    #[test]
    fn a_closed_loop_keeps_its_clients_busy_until_its_time_is_up() {
        let server = serve(OK, false);
        let client = ReadLoop::new(&server.url).unwrap();
        let sent = AtomicUsize::new(0);
        let pace = Pace::Closed {
            clients: 3,
            seconds: 1,
        };
        let started = Instant::now();
        let sample = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(sample.errors(), 0, "{:?}", sample.errors);
        assert_eq!(sample.latencies.len(), sent.load(Ordering::Relaxed));
        assert!(sample.latencies.len() > 100, "{}", sample.latencies.len());
        assert!(sample.timeline.is_empty());
        assert_eq!(server.accepted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn an_error_answer_and_a_closed_connection_are_counted_and_the_run_goes_on() {
        let server = serve(
            "HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
            false,
        );
        let client = ReadLoop::new(&server.url).unwrap();
        let sent = AtomicUsize::new(0);
        let pace = fixed(200.0, 2);
        let sample = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(sample.errors(), 200);
        assert_eq!(sample.errors.get("404: nope"), Some(&200));
        // Each answer closed its connection: the loop opened another for the next request.
        assert_eq!(server.accepted.load(Ordering::Relaxed), 200);
        // A server that is gone fails the requests with the reason, and the run still ends.
        let gone = ReadLoop::new("http://127.0.0.1:9").unwrap();
        let sample = gone.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(sample.errors(), 200);
        assert!(
            sample.errors.keys().all(|e| e.starts_with("connect:")),
            "{:?}",
            sample.errors
        );
    }

    #[test]
    fn a_kept_connection_the_server_closed_is_left_behind() {
        let server = serve(OK, true);
        let client = ReadLoop::new(&server.url).unwrap();
        let sent = AtomicUsize::new(0);
        let pace = fixed(10.0, 1);
        // Each connection closes after its answer, 100 ms before the next request is due.
        let first = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(
            (first.latencies.len(), first.errors()),
            (10, 0),
            "{:?}",
            first.errors
        );
        assert_eq!(server.accepted.load(Ordering::Relaxed), 10);
        // The last was kept with its end of stream unread; the next run opens another.
        std::thread::sleep(Duration::from_millis(50));
        let second = client.run(pace, &mut requests(&sent), &ok).unwrap();
        assert_eq!(
            (second.latencies.len(), second.errors()),
            (10, 0),
            "{:?}",
            second.errors
        );
        assert_eq!(server.accepted.load(Ordering::Relaxed), 20);
    }
}
