//! HTTP/1.1 over the API Unix socket, as Firecracker's `micro_http` speaks it: persistent
//! connections, bodies sized by `Content-Length`, only `GET`, `PUT` and `PATCH`.
//!
//! notes, "API transport": "HTTP/1.1 over a Unix socket"; "Bodies are sized by
//! Content-Length; max payload 51200 bytes by default"; "an unsupported method (POST): 400
//! with a different body shape, `{ "error": "Invalid HTTP Method: Unsupported HTTP
//! method.\nAll previous unanswered requests will be dropped." }`".

use std::io::{self, BufRead, Read, Write};

/// "max payload 51200 bytes by default".
pub const DEFAULT_MAX_PAYLOAD: usize = 51_200;

/// Longest request line or header line accepted.
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The path without its leading `/` and without a query (`drives/rootfs`, `` for `/`).
    pub path: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    Io(io::Error),
    /// A transport-level error: answered with `{ "error": … }`, then the connection closes.
    Http(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// micro_http's suffix on every transport-level error.
const DROPPED: &str = "\nAll previous unanswered requests will be dropped.";

/// Read one request.
pub fn read_request(reader: &mut impl BufRead, max_payload: usize) -> Result<Request, ReadError> {
    let line = match read_line(reader)? {
        None => return Err(ReadError::Closed),
        Some(line) => line,
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Http(format!(
            "Invalid request line: {line:?}.{DROPPED}"
        )));
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ReadError::Http(format!(
            "Unsupported HTTP version.{DROPPED}"
        )));
    }
    let mut content_length = 0usize;
    loop {
        let Some(header) = read_line(reader)? else {
            return Err(ReadError::Closed);
        };
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(ReadError::Http(format!("Invalid header.{DROPPED}")));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().map_err(|_| {
                ReadError::Http(format!("Invalid value for Content-Length.{DROPPED}"))
            })?;
        }
    }
    let method = match method {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        _ => {
            return Err(ReadError::Http(format!(
                "Invalid HTTP Method: Unsupported HTTP method.{DROPPED}"
            )));
        }
    };
    if content_length > max_payload {
        return Err(ReadError::Http(format!(
            "Request payload with size {content_length} is larger than the limit of \
             {max_payload} allowed by server.{DROPPED}"
        )));
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let path = uri.split('?').next().unwrap_or("");
    let path = path.strip_prefix('/').unwrap_or(path).to_owned();
    Ok(Request { method, path, body })
}

/// A line without its `\r\n`; `None` at end of stream before any byte.
fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = reader.take(MAX_LINE as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Http(format!("Header line too long.{DROPPED}")));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| ReadError::Http(format!("Invalid request line.{DROPPED}")))
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Option<String>,
}

impl Response {
    /// "PUT/PATCH success = 204 No Content."
    pub fn no_content() -> Response {
        Response {
            status: 204,
            body: None,
        }
    }

    pub fn json(value: &serde_json::Value) -> Response {
        Response {
            status: 200,
            body: Some(value.to_string()),
        }
    }

    /// "Errors = 4xx with body `{"fault_message": "..."}`."
    pub fn fault(message: impl Into<String>) -> Response {
        Response {
            status: 400,
            body: Some(serde_json::json!({ "fault_message": message.into() }).to_string()),
        }
    }

    /// A transport-level error: the other body shape.
    pub fn transport_error(message: &str) -> Response {
        Response {
            status: 400,
            body: Some(serde_json::json!({ "error": message }).to_string()),
        }
    }
}

pub fn write_response(out: &mut impl Write, response: &Response) -> io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        _ => "",
    };
    let mut text = format!(
        "HTTP/1.1 {} {reason}\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n",
        response.status
    );
    match &response.body {
        Some(body) => {
            text.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
        None => text.push_str("\r\n"),
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<Request, ReadError> {
        read_request(&mut io::Cursor::new(raw.as_bytes().to_vec()), 16)
    }

    #[test]
    fn parses_requests_and_rejects_what_micro_http_rejects() {
        let req = read("PUT /drives/root HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(req.method, Method::Put);
        assert_eq!(req.path, "drives/root");
        assert_eq!(req.body, b"{}");
        assert_eq!(read("GET / HTTP/1.1\r\n\r\n").unwrap().path, "");
        // notes: "an unsupported method (POST): 400 with a different body shape".
        let Err(ReadError::Http(msg)) = read("POST /actions HTTP/1.1\r\n\r\n") else {
            panic!("POST accepted");
        };
        assert_eq!(
            msg,
            "Invalid HTTP Method: Unsupported HTTP method.\nAll previous unanswered requests \
             will be dropped."
        );
        // notes: "max payload 51200 bytes by default" (16 here).
        let Err(ReadError::Http(msg)) = read("PUT /x HTTP/1.1\r\nContent-Length: 17\r\n\r\n")
        else {
            panic!("oversized body accepted");
        };
        assert!(msg.contains("larger than the limit of 16"), "{msg}");
        assert!(matches!(read(""), Err(ReadError::Closed)));
    }
}
