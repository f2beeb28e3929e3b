//! `Conn`: a blocking raw HTTP/1.1 client with bounded reads, a response parser (Content-Length,
//! chunked, read-to-EOF) and a `multipart/byteranges` parser.

use super::*;

/// Builds `METHOD target HTTP/1.1` with a Host header (unless one is given) and `headers`.
pub fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        s.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[derive(Clone, Debug)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .map(|v| v.trim().parse().expect("numeric Content-Length"))
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a connection turned out when we expected it to be closed.
pub fn is_closed_err(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Conn::from_stream(s)
    }

    pub fn from_stream(s: TcpStream) -> Conn {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let _ = s.set_nodelay(true);
        Conn {
            stream: s,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// A connection with a small kernel receive buffer (so the server cannot push much ahead).
    pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Conn {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(rcvbuf).unwrap();
        sock.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
        Conn::from_stream(sock.into())
    }

    pub fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).expect("write request to ferry");
    }

    pub fn try_send(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    /// Sends a GET and reads the response.
    pub fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> Response {
        self.send(&req("GET", target, headers));
        self.read_response("GET")
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut tmp = [0u8; 64 * 1024];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads body bytes into `out`: first from the internal buffer, then from the socket.
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.buf.len() {
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.stream.read(out)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        v
    }

    fn read_line_crlf(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let line = self.take(i);
                self.pos += 2;
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF inside line",
                ));
            }
        }
    }

    /// Reads a status line and headers. `Ok(None)` if the connection was closed before any byte.
    pub fn try_read_head(&mut self) -> io::Result<Option<Response>> {
        while self.buffered().len() < 4 || !self.buffered().windows(4).any(|w| w == b"\r\n\r\n") {
            let n = self.fill()?;
            if n == 0 {
                if self.buffered().is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "EOF inside response head: {:?}",
                        String::from_utf8_lossy(self.buffered())
                    ),
                ));
            }
            if self.buffered().len() > 1 << 20 {
                return Err(io::Error::other("response head larger than 1 MiB"));
            }
        }
        let status_line = String::from_utf8(self.read_line_crlf()?).map_err(io::Error::other)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        if !version.starts_with("HTTP/1.") {
            return Err(io::Error::other(format!("bad status line {status_line:?}")));
        }
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let line = self.read_line_crlf()?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| io::Error::other(format!("bad header line {line:?}")))?;
            headers.push((k.to_string(), v.trim().to_string()));
        }
        Ok(Some(Response {
            version,
            status,
            reason,
            headers,
            body: Vec::new(),
        }))
    }

    pub fn read_head(&mut self) -> Response {
        match self.try_read_head() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed by ferry before a response"),
            Err(e) => panic!("reading response head: {e}"),
        }
    }

    /// Reads a whole response to a request with `method`.
    pub fn read_response(&mut self, method: &str) -> Response {
        self.try_read_response(method)
            .unwrap_or_else(|e| panic!("reading response: {e}"))
    }

    pub fn try_read_response(&mut self, method: &str) -> io::Result<Response> {
        let mut r = self.try_read_head()?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "closed before response")
        })?;
        r.body = self.read_body(&r, method)?;
        Ok(r)
    }

    fn read_exact_buffered(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buffered().len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {} of {n} body bytes", self.buffered().len()),
                ));
            }
        }
        Ok(self.take(n))
    }

    /// Reads the body belonging to `head` (a response to `method`).
    pub fn read_body(&mut self, head: &Response, method: &str) -> io::Result<Vec<u8>> {
        if method.eq_ignore_ascii_case("HEAD")
            || head.status / 100 == 1
            || head.status == 204
            || head.status == 304
        {
            return Ok(Vec::new());
        }
        if head.is_chunked() {
            let mut body = Vec::new();
            loop {
                let line = String::from_utf8_lossy(&self.read_line_crlf()?).into_owned();
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
                if size == 0 {
                    while !self.read_line_crlf()?.is_empty() {}
                    return Ok(body);
                }
                body.extend(self.read_exact_buffered(size)?);
                if !self.read_line_crlf()?.is_empty() {
                    return Err(io::Error::other("chunk not followed by CRLF"));
                }
            }
        }
        if let Some(n) = head.content_length() {
            return self.read_exact_buffered(n as usize);
        }
        let mut body = self.buffered().to_vec();
        self.pos = self.buf.len();
        self.stream.read_to_end(&mut body)?;
        Ok(body)
    }

    /// Streams `len` body bytes to `sink(offset, chunk)` without holding them in memory.
    /// Returns the number of bytes received before EOF/error (== len on success) and the error.
    pub fn stream_body(
        &mut self,
        len: u64,
        mut sink: impl FnMut(u64, &[u8]),
    ) -> (u64, Option<io::Error>) {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < len {
            let want = buf.len().min((len - got) as usize);
            match self.read_some(&mut buf[..want]) {
                Ok(0) => {
                    return (
                        got,
                        Some(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF")),
                    );
                }
                Ok(n) => {
                    sink(got, &buf[..n]);
                    got += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (got, Some(e)),
            }
        }
        (got, None)
    }

    /// `Ok` if the peer has closed the connection (EOF or reset) within IO_TIMEOUT and
    /// sent nothing more; `Err` describing what happened otherwise.
    pub fn closed_state(&mut self) -> Result<(), String> {
        if !self.buffered().is_empty() {
            return Err(format!(
                "unexpected extra bytes: {:?}",
                String::from_utf8_lossy(self.buffered())
            ));
        }
        let mut b = [0u8; 4096];
        match self.stream.read(&mut b) {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!(
                "unexpected extra bytes: {:?}",
                String::from_utf8_lossy(&b[..n])
            )),
            Err(e) if is_closed_err(&e) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(format!("connection still open after {IO_TIMEOUT:?}"))
            }
            Err(e) => Err(format!("read error: {e}")),
        }
    }

    pub fn expect_closed(&mut self, ctx: &str) {
        if let Err(e) = self.closed_state() {
            panic!("{ctx}: expected ferry to close the connection: {e}");
        }
    }
}

/// One part of a `multipart/byteranges` body: its headers and its bytes.
pub type BodyPart = (Vec<(String, String)>, Vec<u8>);

/// Parses `multipart/byteranges` bodies: returns (part headers, part body) per part.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<BodyPart> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"))
        .trim_matches('"')
        .to_string();
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay[from..]
            .windows(delim.len())
            .position(|w| w == &delim[..])
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, 0).expect("first boundary");
    loop {
        let after = at + delim.len();
        if body[after..].starts_with(b"--") {
            break; // close delimiter
        }
        assert!(
            body[after..].starts_with(b"\r\n"),
            "boundary line not followed by CRLF"
        );
        let hstart = after + 2;
        let hend = body[hstart..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head end")
            + hstart;
        let headers: Vec<(String, String)> = String::from_utf8_lossy(&body[hstart..hend])
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("part header");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let dstart = hend + 4;
        let next = find(body, dstart).expect("next boundary");
        // the part body is followed by CRLF before the next delimiter
        assert!(
            next >= dstart + 2 && &body[next - 2..next] == b"\r\n",
            "part body not followed by CRLF"
        );
        parts.push((headers, body[dstart..next - 2].to_vec()));
        at = next;
    }
    parts
}

pub fn part_header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The types of the HTTP/2 frames in a server's byte stream `bytes`, in order (the last one
/// may be cut short).
pub fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

/// Whether a new connection to `addr` is refused, or closed without an answer to a GET.
pub fn refused(addr: SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return true;
    };
    let mut probe = Conn::from_stream(s);
    probe
        .stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    if probe
        .try_send(&req("GET", "/static/hello.txt", &[]))
        .is_err()
    {
        return true;
    }
    match probe.try_read_head() {
        Ok(None) => true,
        Err(e) => is_closed_err(&e),
        Ok(Some(_)) => false,
    }
}
