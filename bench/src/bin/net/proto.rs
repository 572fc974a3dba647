//! The two protocols every server speaks, as plain functions on bytes, so that each runtime's
//! server differs only in how it waits for its socket.
//!
//! - echo: write back what was read (the client sends 64-byte requests and waits for each echo);
//! - HTTP/1.1 keep-alive hello world: answer every complete request (a header block ending in
//!   `\r\n\r\n`, no body: wrk sends `GET /`) with the same 13-byte response.

/// The response to every HTTP request.
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

/// The size of a connection's read buffer.
pub const BUF: usize = 4096;

/// Which protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Http,
}

impl Kind {
    pub fn parse(s: &str) -> Kind {
        match s {
            "echo" => Kind::Echo,
            "http" => Kind::Http,
            other => panic!("unknown protocol {other:?} (echo or http)"),
        }
    }
}

/// Per-connection HTTP state: bytes of an incomplete request carried over between reads.
#[derive(Default)]
pub struct Http {
    pending: Vec<u8>,
}

impl Http {
    /// Takes newly read bytes; appends to `out` one response per complete request.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let data: &[u8] = if self.pending.is_empty() {
            input
        } else {
            self.pending.extend_from_slice(input);
            &self.pending
        };
        let mut start = 0;
        while let Some(end) = find_end(&data[start..]) {
            out.extend_from_slice(HTTP_RESPONSE);
            start += end;
        }
        let rest = data[start..].to_vec();
        self.pending = rest;
    }
}

/// Returns the length of the first header block (through `\r\n\r\n`), if complete.
fn find_end(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_and_split_requests() {
        let mut h = Http::default();
        let mut out = Vec::new();
        h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo", &mut out);
        assert_eq!(out, HTTP_RESPONSE);
        out.clear();
        h.feed(b"st: x\r\n\r\n", &mut out);
        assert_eq!(out, HTTP_RESPONSE);
        out.clear();
        h.feed(b"", &mut out);
        assert!(out.is_empty());
    }
}
