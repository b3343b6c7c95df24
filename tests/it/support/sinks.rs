//! Local receivers standing in for the outside world in alert tests: an SMTP server that
//! speaks enough of the protocol to accept a message (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT), an HTTP/1.1 server recording requests (Slack, webhooks), a carbon plaintext
//! receiver and a UDP syslog receiver. Each runs on its own thread with its own tokio runtime,
//! so a test blocking its own thread never stalls them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn spawn_server<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            serve(listener).await;
        });
    });
    addr
}

/// One email the SMTP sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub rcpt: Vec<String>,
    pub data: String,
}

/// An SMTP server that accepts every message (after refusing the first `fail_first` MAIL
/// commands with a 451, to exercise retries).
pub struct SmtpSink {
    pub addr: SocketAddr,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start(fail_first: usize) -> Self {
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let store = mails.clone();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let addr = spawn_server(move |listener| async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    let _ = w.write_all(b"220 sink.test ESMTP ready\r\n").await;
                    let (mut from, mut rcpt) = (String::new(), Vec::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250 sink.test\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            if failures
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok()
                            {
                                b"451 4.3.0 try again later\r\n"
                            } else {
                                from = cmd[10..].trim().to_string();
                                rcpt.clear();
                                b"250 2.1.0 OK\r\n"
                            }
                        } else if upper.starts_with("RCPT TO:") {
                            rcpt.push(cmd[8..].trim().to_string());
                            b"250 2.1.5 OK\r\n"
                        } else if upper == "DATA" {
                            let _ = w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" || line == ".\n" {
                                    break;
                                }
                                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            store.lock().unwrap().push(Mail {
                                from: from.clone(),
                                rcpt: rcpt.clone(),
                                data,
                            });
                            b"250 2.0.0 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                            return;
                        } else if upper == "RSET" || upper == "NOOP" {
                            b"250 OK\r\n"
                        } else {
                            b"502 5.5.2 not implemented\r\n"
                        };
                        if w.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpSink { addr, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

/// One HTTP request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An HTTP/1.1 server recording every request; answers 500 to the first `fail_first`, then
/// 200 `ok` (what Slack answers).
pub struct HttpSink {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpSink {
    pub fn start(fail_first: usize) -> Self {
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let store = requests.clone();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let addr = spawn_server(move |listener| async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let store = store.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or("").to_string();
                        let path = parts.next().unwrap_or("").to_string();
                        let mut headers = BTreeMap::new();
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if r.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        store.lock().unwrap().push(Request {
                            method,
                            path,
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                            at: Instant::now(),
                        });
                        let fail = failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let resp: &[u8] = if fail {
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\noops"
                        } else {
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                        };
                        if w.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HttpSink { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn to_path(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

/// A carbon plaintext receiver collecting lines.
pub struct CarbonSink {
    pub lines: Arc<Mutex<Vec<String>>>,
    pub connections: Arc<AtomicUsize>,
}

impl CarbonSink {
    /// Listens on `addr` (port 0 for any).
    pub fn start_on(addr: &str) -> (Self, SocketAddr) {
        let std_listener = std::net::TcpListener::bind(addr).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let bound = std_listener.local_addr().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let (store, conns) = (lines.clone(), connections.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    conns.fetch_add(1, Ordering::SeqCst);
                    let store = store.clone();
                    tokio::spawn(async move {
                        let mut r = BufReader::new(sock);
                        let mut line = String::new();
                        while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                            store.lock().unwrap().push(line.trim_end().to_string());
                            line.clear();
                        }
                    });
                }
            });
        });
        (CarbonSink { lines, connections }, bound)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A UDP syslog receiver.
pub struct SyslogSink {
    pub addr: SocketAddr,
    pub datagrams: Arc<Mutex<Vec<String>>>,
}

impl SyslogSink {
    pub fn start() -> Self {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let datagrams: Arc<Mutex<Vec<String>>> = Arc::default();
        let store = datagrams.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                store
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        SyslogSink { addr, datagrams }
    }

    pub fn lines(&self) -> Vec<String> {
        self.datagrams.lock().unwrap().clone()
    }
}
