//! `asyncapi check` and `asyncapi serve`: an AsyncAPI document any service wrote.
//!
//! The document is read as plain JSON (or YAML) rather than as `ruststream`'s own
//! `asyncapi::Document`, which is written, never read: a document from another service, or
//! another version of this framework, must be checkable too. The page is rendered here for
//! the same reason.

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use crate::error::CliError;

/// Reads a document: JSON, or YAML when it does not start with `{`.
pub(crate) fn load(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|reason| {
        CliError::AsyncApi(format!(
            "{} is not an AsyncAPI document: {reason}",
            path.display()
        ))
    })
}

/// Parses JSON, or YAML when the text does not start with `{`.
pub(crate) fn parse(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|error| format!("invalid JSON: {error}"))
    } else {
        serde_saphyr::from_str(text).map_err(|error| format!("invalid YAML: {error}"))
    }
}

/// A valid document's outline, printed by `check`.
#[derive(Debug)]
pub(crate) struct Summary {
    path: String,
    version: String,
    title: String,
    app_version: String,
    servers: usize,
    channels: usize,
    operations: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: a valid AsyncAPI {} document: `{}` {}, {} server(s), {} channel(s), {} operation(s)",
            self.path,
            self.version,
            self.title,
            self.app_version,
            self.servers,
            self.channels,
            self.operations
        )
    }
}

/// `asyncapi check FILE`.
pub(crate) fn check_file(path: &Path) -> Result<Summary, CliError> {
    let document = load(path)?;
    let problems = check(&document);
    if !problems.is_empty() {
        let mut text = format!(
            "{} is not a valid AsyncAPI 3 document ({} problem(s)):",
            path.display(),
            problems.len()
        );
        for problem in &problems {
            let _ = write!(text, "\n  - {problem}");
        }
        return Err(CliError::AsyncApi(text));
    }
    let count = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_object)
            .map_or(0, |map| map.len())
    };
    Ok(Summary {
        path: path.display().to_string(),
        version: text_at(&document, "asyncapi").to_owned(),
        title: text_at(&document["info"], "title").to_owned(),
        app_version: text_at(&document["info"], "version").to_owned(),
        servers: count("servers"),
        channels: count("channels"),
        operations: count("operations"),
    })
}

fn text_at<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Every structural problem of `document`, each with where it is (`operations.x.channel`).
pub(crate) fn check(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(root) = document.as_object() else {
        return vec!["the document is not a mapping of fields".to_owned()];
    };
    match root.get("asyncapi") {
        Some(Value::String(version)) if version.starts_with("3.") => {}
        Some(Value::String(version)) => problems.push(format!(
            "asyncapi: version `{version}` is not AsyncAPI 3 (3.0.0 expected); regenerate it \
             with the service's `asyncapi gen`"
        )),
        Some(_) => problems.push("asyncapi: must be a version string such as \"3.0.0\"".to_owned()),
        None => problems.push("asyncapi: missing (the AsyncAPI version, \"3.0.0\")".to_owned()),
    }
    match root.get("info") {
        Some(Value::Object(info)) => {
            for key in ["title", "version"] {
                if !info.get(key).is_some_and(Value::is_string) {
                    problems.push(format!("info.{key}: missing, or not a string"));
                }
            }
        }
        _ => problems.push("info: missing (an object with title and version)".to_owned()),
    }
    let section =
        |problems: &mut Vec<String>, key: &str| -> Option<serde_json::Map<String, Value>> {
            match root.get(key) {
                None => None,
                Some(Value::Object(map)) => Some(map.clone()),
                Some(_) => {
                    problems.push(format!("{key}: must be a mapping of ids to objects"));
                    None
                }
            }
        };
    let check_id = |problems: &mut Vec<String>, key: &str, id: &str| {
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(format!("{key}.{id}: the id must match ^[A-Za-z0-9_\\-]+$"));
        }
    };
    if let Some(servers) = section(&mut problems, "servers") {
        for (id, server) in &servers {
            check_id(&mut problems, "servers", id);
            for key in ["host", "protocol"] {
                if !server.get(key).is_some_and(Value::is_string) {
                    problems.push(format!("servers.{id}.{key}: missing, or not a string"));
                }
            }
        }
    }
    if let Some(channels) = section(&mut problems, "channels") {
        for (id, channel) in &channels {
            check_id(&mut problems, "channels", id);
            let at = format!("channels.{id}");
            if !channel.is_object() {
                problems.push(format!("{at}: must be an object"));
                continue;
            }
            if let Some(address) = channel.get("address")
                && !(address.is_string() || address.is_null())
            {
                problems.push(format!("{at}.address: must be a string or null"));
            }
            if let Some(messages) = channel.get("messages")
                && !messages.is_object()
            {
                problems.push(format!(
                    "{at}.messages: must be a mapping of ids to messages"
                ));
            }
            if let Some(servers) = channel.get("servers") {
                expect_refs(
                    document,
                    servers,
                    &format!("{at}.servers"),
                    "#/servers/",
                    &mut problems,
                );
            }
        }
    }
    if let Some(operations) = section(&mut problems, "operations") {
        for (id, operation) in &operations {
            check_id(&mut problems, "operations", id);
            let at = format!("operations.{id}");
            match operation.get("action").and_then(Value::as_str) {
                Some("send" | "receive") => {}
                _ => problems.push(format!("{at}.action: must be `send` or `receive`")),
            }
            check_channel_and_messages(document, operation, &at, true, &mut problems);
            if let Some(reply) = operation.get("reply") {
                check_channel_and_messages(
                    document,
                    reply,
                    &format!("{at}.reply"),
                    false,
                    &mut problems,
                );
            }
        }
    }
    // Whatever else refers to something (schemas, components) must resolve too.
    every_ref(document, "", &mut |at, target| {
        if resolve(document, target).is_none() {
            problems.push(format!("{at}: $ref `{target}` does not resolve"));
        }
    });
    problems.sort();
    problems.dedup();
    problems
}

/// An operation's (or reply's) `channel` reference and its `messages`, which must be
/// messages of that channel.
fn check_channel_and_messages(
    document: &Value,
    object: &Value,
    at: &str,
    channel_required: bool,
    problems: &mut Vec<String>,
) {
    let channel = match object.get("channel") {
        Some(channel) => reference(channel),
        None if channel_required => {
            problems.push(format!("{at}.channel: missing (a $ref to #/channels/<id>)"));
            return;
        }
        None => None,
    };
    if object.get("channel").is_some() && channel.is_none() {
        problems.push(format!("{at}.channel: must be a $ref to #/channels/<id>"));
    }
    if let Some(channel) = channel
        && !channel.starts_with("#/channels/")
    {
        problems.push(format!(
            "{at}.channel: `{channel}` does not point into #/channels"
        ));
    }
    if let Some(messages) = object.get("messages") {
        let prefix = channel.map(|channel| format!("{channel}/messages/"));
        expect_refs(
            document,
            messages,
            &format!("{at}.messages"),
            prefix.as_deref().unwrap_or("#/"),
            problems,
        );
    }
}

/// `list` is a list of references, each under `prefix` (resolution is checked for every
/// reference of the document at once).
fn expect_refs(
    _document: &Value,
    list: &Value,
    at: &str,
    prefix: &str,
    problems: &mut Vec<String>,
) {
    let Some(items) = list.as_array() else {
        problems.push(format!("{at}: must be a list of $refs"));
        return;
    };
    for (index, item) in items.iter().enumerate() {
        match reference(item) {
            Some(target) if target.starts_with(prefix) => {}
            Some(target) => {
                problems.push(format!("{at}[{index}]: `{target}` is not under {prefix}"))
            }
            None => problems.push(format!("{at}[{index}]: must be a $ref")),
        }
    }
}

fn reference(value: &Value) -> Option<&str> {
    value.get("$ref").and_then(Value::as_str)
}

/// Calls `found(location, target)` for every `$ref` in `value`.
fn every_ref(value: &Value, at: &str, found: &mut impl FnMut(&str, &str)) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref"
                    && let Value::String(target) = item
                {
                    found(at.trim_start_matches('.'), target);
                } else {
                    every_ref(item, &format!("{at}.{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                every_ref(item, &format!("{at}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// The value a local reference (`#/a/b`) points to; `None` for one that does not resolve
/// or is not local.
fn resolve<'v>(document: &'v Value, target: &str) -> Option<&'v Value> {
    let pointer = target.strip_prefix('#')?;
    document.pointer(pointer)
}

/// The page of `document`: one self-contained HTML page, no script.
pub(crate) fn render_html(document: &Value) -> String {
    let info = &document["info"];
    let title = escape(text_at(info, "title"));
    let mut page = String::with_capacity(8 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} {version} - AsyncAPI</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header><h1>{title} <span class=\"version\">{version}</span></h1>\
         <p>AsyncAPI {asyncapi} &middot; <a href=\"asyncapi.json\">asyncapi.json</a></p></header>\n<main>\n",
        version = escape(text_at(info, "version")),
        asyncapi = escape(text_at(document, "asyncapi")),
    );
    if let Some(description) = info.get("description").and_then(Value::as_str) {
        let _ = writeln!(page, "<p>{}</p>", escape(description));
    }
    if let Some(servers) = document.get("servers").and_then(Value::as_object) {
        page.push_str("<section id=\"servers\"><h2>Servers</h2><table><tr><th>id</th><th>protocol</th><th>host</th><th>description</th></tr>\n");
        for (id, server) in servers {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                escape(id),
                escape(text_at(server, "protocol")),
                escape(text_at(server, "host")),
                escape(text_at(server, "description"))
            );
        }
        page.push_str("</table></section>\n");
    }
    let operations = document.get("operations").and_then(Value::as_object);
    if let Some(channels) = document.get("channels").and_then(Value::as_object) {
        page.push_str("<section id=\"channels\"><h2>Channels</h2>\n");
        for (id, channel) in channels {
            let address = channel
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("(set at run time)");
            let _ = writeln!(
                page,
                "<article id=\"channel-{id}\"><h3>{id} <span class=\"address\">{address}</span></h3>",
                id = escape(id),
                address = escape(address)
            );
            let target = format!("#/channels/{id}");
            for (operation_id, operation) in operations.into_iter().flatten() {
                if reference(&operation["channel"]) == Some(target.as_str()) {
                    let action = text_at(operation, "action");
                    let _ = writeln!(
                        page,
                        "<p class=\"operation\"><span class=\"badge {action}\">{action}</span>{}{}</p>",
                        escape(operation_id),
                        operation
                            .get("description")
                            .or_else(|| operation.get("summary"))
                            .and_then(Value::as_str)
                            .map(|text| format!(": {}", escape(text)))
                            .unwrap_or_default(),
                        action = escape(action)
                    );
                }
            }
            for (message_id, message) in channel
                .get("messages")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let message = reference(message)
                    .and_then(|target| resolve(document, target))
                    .unwrap_or(message);
                let _ = writeln!(
                    page,
                    "<h4>message {} <span class=\"muted\">{}</span></h4>",
                    escape(message_id),
                    escape(text_at(message, "contentType"))
                );
                if let Some(payload) = message.get("payload") {
                    let _ = writeln!(
                        page,
                        "<details><summary>payload schema</summary><pre><code>{}</code></pre></details>",
                        escape(&serde_json::to_string_pretty(payload).unwrap_or_default())
                    );
                }
            }
            page.push_str("</article>\n");
        }
        page.push_str("</section>\n");
    }
    let _ = writeln!(
        page,
        "<section id=\"document\"><h2>Document</h2><details><summary>the whole document \
         (JSON)</summary><pre><code>{}</code></pre></details></section>",
        escape(&serde_json::to_string_pretty(document).unwrap_or_default())
    );
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa;line-height:1.45}\
header{background:#24292f;color:#fff;padding:1.2rem 2rem}header h1{margin:0}header a{color:#9ecbff}\
.version{font-weight:normal;opacity:.75;font-size:1rem}main{max-width:72rem;margin:0 auto;padding:1rem 2rem 3rem}\
article{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1.2rem;margin:.8rem 0}\
.address{font-family:monospace;background:#eff1f3;padding:.1rem .4rem;border-radius:4px;font-size:.9rem}\
.badge{font-size:.75rem;font-weight:600;text-transform:uppercase;padding:.1rem .5rem;border-radius:1rem;margin-right:.4rem;color:#fff}\
.receive{background:#1a7f37}.send{background:#0969da}.muted{color:#656d76;font-weight:normal}\
table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}\
pre{background:#f6f8fa;padding:.6rem;border-radius:4px;overflow:auto}";

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// `asyncapi serve FILE`: the page at `/`, the document at `/asyncapi.json`, until Ctrl-C.
pub(crate) async fn serve(document: Value, addr: SocketAddr) -> Result<(), CliError> {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;

    let html = render_html(&document);
    let json = serde_json::to_string_pretty(&document).unwrap_or_default();
    let page = move || {
        let html = html.clone();
        async move { ([(CONTENT_TYPE, "text/html; charset=utf-8")], html) }
    };
    let json = move || {
        let json = json.clone();
        async move { ([(CONTENT_TYPE, "application/json")], json) }
    };
    let routes = axum::Router::new()
        .route("/", get(page))
        .route("/asyncapi.json", get(json));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Serve { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| CliError::Serve { addr, source })?;
    println!("serving the AsyncAPI page on http://{local}/ (Ctrl-C stops)");
    axum::serve(listener, routes)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| CliError::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        serde_json::json!({
            "asyncapi": "3.0.0",
            "info": { "title": "orders", "version": "1.0.0" },
            "servers": { "nats": { "host": "127.0.0.1:4222", "protocol": "nats" } },
            "channels": {
                "orders": {
                    "address": "orders",
                    "messages": { "Order": { "name": "Order", "contentType": "application/json",
                        "payload": { "$ref": "#/components/schemas/Order" } } },
                    "servers": [ { "$ref": "#/servers/nats" } ]
                }
            },
            "operations": {
                "book": {
                    "action": "receive",
                    "channel": { "$ref": "#/channels/orders" },
                    "messages": [ { "$ref": "#/channels/orders/messages/Order" } ]
                }
            },
            "components": { "schemas": { "Order": { "type": "object" } } }
        })
    }

    #[test]
    fn a_valid_document_has_no_problem() {
        assert_eq!(check(&valid()), Vec::<String>::new());
    }

    #[test]
    fn an_asyncapi_2_document_is_refused() {
        let mut document = valid();
        document["asyncapi"] = "2.6.0".into();
        let problems = check(&document);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("not AsyncAPI 3"), "{problems:?}");
    }

    #[test]
    fn dangling_references_are_reported_where_they_are() {
        let mut document = valid();
        document["operations"]["book"]["channel"]["$ref"] = "#/channels/nope".into();
        document["channels"]["orders"]["messages"]["Order"]["payload"]["$ref"] =
            "#/components/schemas/Missing".into();
        let problems = check(&document);
        assert!(
            problems.iter().any(|p| p
                .starts_with("operations.book.channel: $ref `#/channels/nope` does not resolve")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("operations.book.messages[0]")
                    && p.contains("not under #/channels/nope/messages/")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("channels.orders.messages.Order.payload")),
            "{problems:?}"
        );
    }

    #[test]
    fn missing_info_and_bad_actions_are_reported() {
        let mut document = valid();
        document["info"] = serde_json::json!({ "title": "orders" });
        document["operations"]["book"]["action"] = "listen".into();
        let problems = check(&document);
        assert!(
            problems.iter().any(|p| p.starts_with("info.version")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("operations.book.action")),
            "{problems:?}"
        );
    }

    #[test]
    fn yaml_documents_are_read_too() {
        let yaml = "asyncapi: 3.0.0\ninfo:\n  title: orders\n  version: '1'\nchannels: {}\noperations: {}\n";
        let document = parse(yaml).unwrap();
        assert_eq!(check(&document), Vec::<String>::new());
    }

    #[test]
    fn the_page_escapes_and_shows_channels() {
        let mut document = valid();
        document["info"]["title"] = "<orders>".into();
        let page = render_html(&document);
        assert!(page.contains("&lt;orders&gt;"));
        assert!(page.contains("channel-orders"));
        assert!(page.contains("badge receive"));
    }
}
