//! A minimal HTTP/1.1 client over one keep-alive TCP connection: enough to drive load
//! against the gateway while costing the shared CPU as little as possible.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest status or header line accepted from the server.
const MAX_LINE: usize = 8 * 1024;
/// Largest response body accepted; a 100-user page is well below this.
const MAX_BODY: usize = 16 << 20;

/// A response: status and body (headers are read and dropped).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One connection, reopened after the server closes it.
pub struct Connection {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    /// Sends `method path` with the extra header lines (each ending in `\r\n`) and body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}",
            self.addr
        );
        if !body.is_empty() || method != "GET" {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        head += "\r\n";
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(self.addr).await?;
                // Head and body go in two writes: without this the body waits for the
                // server's delayed acknowledgement of the head (about 40 ms a request).
                stream.set_nodelay(true)?;
                self.stream.insert(BufReader::new(stream))
            }
        };
        let outcome = exchange(stream, head.as_bytes(), body).await;
        match outcome {
            Ok((response, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok(response)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    pub async fn get(&mut self, path: &str, headers: &str) -> io::Result<Response> {
        self.request("GET", path, headers, &[]).await
    }
}

/// Writes one request and reads its response; the flag says if the connection stays open.
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    head: &[u8],
    body: &[u8],
) -> io::Result<(Response, bool)> {
    stream.get_mut().write_all(head).await?;
    if !body.is_empty() {
        stream.get_mut().write_all(body).await?;
    }
    let status_line = read_line(stream).await?;
    let status = parse_status(&status_line)?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        let line = read_line(stream).await?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("header line without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad("bad content-length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        }
    }
    let body = if chunked {
        read_chunked(stream).await?
    } else {
        let length = length.unwrap_or(0);
        if length > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        body
    };
    Ok((Response { status, body }, keep_alive))
}

async fn read_chunked(stream: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream).await?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, then the blank line that ends the message.
            while !read_line(stream).await?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).await?;
        read_line(stream).await?;
    }
}

/// One line without its `\r\n`; end of stream before it is an error.
async fn read_line(stream: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(bad("line too long"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("line is not UTF-8"))
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status(line: &str) -> io::Result<u16> {
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
            code.parse().map_err(|_| bad("bad status code"))
        }
        _ => Err(bad("not an HTTP/1.x status line")),
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on one connection with the next canned reply.
    async fn canned(replies: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = BufReader::new(socket);
            for reply in replies {
                // Read the request head up to its blank line.
                loop {
                    let mut line = String::new();
                    socket.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                }
                socket.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn responses_are_read_by_length_and_by_chunks_on_one_connection() {
        let addr = canned(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut conn = Connection::new(addr);
        let cases: [(u16, &[u8]); 3] = [(200, b"hello"), (404, b"abcde"), (204, b"")];
        for (status, body) in cases {
            let response = conn.get("/", "").await.unwrap();
            assert_eq!((response.status, &response.body[..]), (status, body));
        }
    }

    #[test]
    fn status_lines_are_parsed_or_refused() {
        let cases = [
            ("HTTP/1.1 200 OK", Some(200)),
            ("HTTP/1.0 503 Service Unavailable", Some(503)),
            ("HTTP/1.1 404", Some(404)),
            ("SSH-2.0-OpenSSH", None),
            ("HTTP/1.1 abc OK", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_status(line).ok(), expected, "{line}");
        }
    }
}
