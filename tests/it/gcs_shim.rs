//! Serves object_store's GCS XML API calls that gcp-storage-emulator lacks
//! (HEAD, DELETE, listing, and the ETag/Last-Modified headers of GET and
//! PUT answers) from the emulator's JSON API; everything else is passed
//! through. One request per connection (`Connection: close`). Test
//! infrastructure only: see `cloud_support.rs` for what stays untested.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::cloud_support::{encode, http, httpdate};
use crate::s3_support::find;

/// Starts the shim in front of the emulator at `api`; returns its address.
pub fn start(api: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the GCS shim");
    let addr = listener.local_addr().unwrap().to_string();
    let api = api.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let api = api.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, &api);
            });
        }
    });
    addr
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(c: &mut TcpStream) -> std::io::Result<Request> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 << 10];
    let end = loop {
        if let Some(e) = find(&got, b"\r\n\r\n") {
            break e;
        }
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = got[end + 4..].to_vec();
    while body.len() < len {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Ok(Request {
        method,
        path: decode(path),
        query,
        headers,
        body,
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn respond(
    c: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        h.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    h.push_str("\r\n");
    c.write_all(h.as_bytes())?;
    if !head_only {
        c.write_all(body)?;
    }
    c.flush()
}

/// Object metadata from the JSON API: (size, etag, updated as unix secs).
fn metadata(api: &str, bucket: &str, key: &str) -> Option<(u64, String, u64)> {
    let (status, _, body) = http(
        api,
        "GET",
        &format!("/storage/v1/b/{bucket}/o/{}", encode(key)),
        &[],
        b"",
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let size = v["size"].as_str()?.parse().ok()?;
    let etag = v["etag"].as_str().or(v["md5Hash"].as_str())?.to_string();
    Some((
        size,
        etag,
        updated_secs(v["updated"].as_str().unwrap_or_default()),
    ))
}

/// `2026-12-02T01:43:04.849659Z` → unix seconds.
fn updated_secs(t: &str) -> u64 {
    let n = |a: usize, b: usize| t.get(a..b).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    (days * 86400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)) as u64
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn list(api: &str, bucket: &str, req: &Request) -> (u16, Vec<u8>) {
    let q = |k: &str| {
        req.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
    };
    let prefix = q("prefix").unwrap_or_default();
    let mut path = format!("/storage/v1/b/{bucket}/o?prefix={}", encode(&prefix));
    if let Some(d) = q("delimiter") {
        path.push_str(&format!("&delimiter={}", encode(&d)));
    }
    let Ok((200, _, body)) = http(api, "GET", &path, &[], b"") else {
        return (404, b"<Error><Code>NoSuchBucket</Code></Error>".to_vec());
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01\"><Name>{bucket}</Name><Prefix>{}</Prefix><IsTruncated>false</IsTruncated>",
        xml_escape(&prefix)
    );
    for item in v["items"].as_array().into_iter().flatten() {
        let secs = updated_secs(item["updated"].as_str().unwrap_or_default());
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>\"{}\"</ETag><Size>{}</Size></Contents>",
            xml_escape(item["name"].as_str().unwrap_or_default()),
            rfc3339(secs),
            xml_escape(item["etag"].as_str().unwrap_or_default()),
            item["size"].as_str().unwrap_or("0"),
        ));
    }
    for p in v["prefixes"].as_array().into_iter().flatten() {
        xml.push_str(&format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            xml_escape(p.as_str().unwrap_or_default())
        ));
    }
    xml.push_str("</ListBucketResult>");
    (200, xml.into_bytes())
}

fn rfc3339(secs: u64) -> String {
    // httpdate gives the calendar date; rebuild it as RFC 3339.
    let d = httpdate(secs); // "Wed, 02 Dec 2026 01:43:04 GMT"
    let parts: Vec<&str> = d.split_whitespace().collect();
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])
    .unwrap_or(0)
        + 1;
    format!("{}-{mon:02}-{}T{}Z", parts[3], parts[1], parts[4])
}

fn serve(mut c: TcpStream, api: &str) -> std::io::Result<()> {
    let req = read_request(&mut c)?;
    let trimmed = req.path.trim_start_matches('/');
    let (bucket, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    match (req.method.as_str(), key.is_empty()) {
        ("GET", true) if req.query.iter().any(|(k, _)| k == "list-type") => {
            let (status, body) = list(api, bucket, &req);
            respond(
                &mut c,
                status,
                &[("Content-Type".into(), "application/xml".into())],
                &body,
                false,
            )
        }
        ("HEAD", false) => match metadata(api, bucket, key) {
            Some((size, etag, updated)) => respond(
                &mut c,
                200,
                &[
                    ("Content-Length".into(), size.to_string()),
                    ("ETag".into(), format!("\"{etag}\"")),
                    ("Last-Modified".into(), httpdate(updated)),
                ],
                b"",
                true,
            ),
            None => respond(&mut c, 404, &[], b"", true),
        },
        ("DELETE", false) => {
            let (status, _, _) = http(
                api,
                "DELETE",
                &format!("/storage/v1/b/{bucket}/o/{}", encode(key)),
                &[],
                b"",
            )?;
            respond(
                &mut c,
                if status == 404 { 404 } else { 204 },
                &[],
                b"",
                false,
            )
        }
        _ => {
            // Pass through, then add the headers object_store requires.
            let fwd: Vec<(&str, String)> = req
                .headers
                .iter()
                .filter(|(k, _)| k == "range" || k == "content-type")
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let target = if req.query.is_empty() {
                format!("/{bucket}/{}", encode_path(key))
            } else {
                let q: Vec<String> = req
                    .query
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect();
                format!("/{bucket}/{}?{}", encode_path(key), q.join("&"))
            };
            let (status, head, body) = http(api, &req.method, &target, &fwd, &req.body)?;
            let mut headers: Vec<(String, String)> = head
                .split("\r\n")
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("connection")
                        && !k.eq_ignore_ascii_case("content-length")
                })
                .collect();
            if (200..300).contains(&status) && !key.is_empty() {
                if let Some((_, etag, updated)) = metadata(api, bucket, key) {
                    headers.push(("ETag".into(), format!("\"{etag}\"")));
                    headers.push(("Last-Modified".into(), httpdate(updated)));
                }
            }
            respond(&mut c, status, &headers, &body, req.method == "HEAD")
        }
    }
}

/// Object names keep their slashes in XML API paths.
fn encode_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}
