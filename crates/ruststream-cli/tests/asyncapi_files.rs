//! `ruststream asyncapi check` and `asyncapi serve` on documents written to files.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CLI: &str = env!("CARGO_BIN_EXE_ruststream");

const VALID: &str = r##"{
  "asyncapi": "3.0.0",
  "info": { "title": "orders", "version": "1.2.0", "description": "Books orders." },
  "servers": { "nats": { "host": "127.0.0.1:4222", "protocol": "nats" } },
  "channels": {
    "orders_created": {
      "address": "orders.created",
      "messages": {
        "Order": { "name": "Order", "contentType": "application/json",
                   "payload": { "$ref": "#/components/schemas/Order" } }
      },
      "servers": [ { "$ref": "#/servers/nats" } ]
    }
  },
  "operations": {
    "book_order": {
      "action": "receive",
      "channel": { "$ref": "#/channels/orders_created" },
      "messages": [ { "$ref": "#/channels/orders_created/messages/Order" } ]
    }
  },
  "components": { "schemas": { "Order": { "type": "object" } } }
}"##;

fn write(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("asyncapi-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_a_valid_document() {
    let path = write("valid.json", VALID);
    let output = Command::new(CLI)
        .args(["asyncapi", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("a valid AsyncAPI 3.0.0 document: `orders` 1.2.0, 1 server(s), 1 channel(s), 1 operation(s)"),
        "{stdout}"
    );
}

#[test]
fn check_lists_every_problem_and_fails() {
    let broken = VALID
        .replace("\"3.0.0\"", "\"2.6.0\"")
        .replace("#/channels/orders_created\" }", "#/channels/missing\" }");
    let path = write("broken.json", &broken);
    let output = Command::new(CLI)
        .args(["asyncapi", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a valid AsyncAPI 3 document"),
        "{stderr}"
    );
    assert!(
        stderr.contains("asyncapi: version `2.6.0` is not AsyncAPI 3"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("operations.book_order.channel: $ref `#/channels/missing` does not resolve"),
        "{stderr}"
    );
}

#[test]
fn check_says_when_a_file_is_not_a_document() {
    let path = write("garbage.json", "{ not json");
    let output = Command::new(CLI)
        .args(["asyncapi", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not an AsyncAPI document: invalid JSON"),
        "{stderr}"
    );
}

/// A GET of `path` on `addr`: the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The `serve` process, stopped when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_renders_the_page_and_the_document() {
    let path = write("serve.json", VALID);
    let mut child = Server(
        Command::new(CLI)
            .args(["asyncapi", "serve", "--addr", "127.0.0.1:0"])
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let (status, page) = get(&addr, "/");
    let (json_status, json) = get(&addr, "/asyncapi.json");
    drop(child);

    assert!(status.contains("200"), "{status}");
    assert!(
        page.contains("<title>orders 1.2.0 - AsyncAPI</title>"),
        "{page}"
    );
    assert!(page.contains("orders.created"), "{page}");
    assert!(page.contains("badge receive"), "{page}");
    assert!(json_status.contains("200"), "{json_status}");
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(served["info"]["title"], "orders");
}
