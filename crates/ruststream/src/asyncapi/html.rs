//! [`render_html`]: the document as one self-contained page, rendered on the server.
//!
//! The page needs no script and nothing from the network: servers, channels with their
//! operations and messages, payload and header schemas as property tables (named types
//! link to their definition), and every schema's JSON in a `<details>` block. It links to
//! `asyncapi.json` and `asyncapi.yaml` next to it.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Action, Channel, Document, Message, Operation, Reference};

/// The page of `document`: a complete HTML document, readable without a script and
/// offline.
///
/// `asyncapi serve` serves it at `/`, next to `/asyncapi.json` and `/asyncapi.yaml`; an
/// HTTP endpoint can serve it anywhere that has those two beside it (its links are
/// relative).
pub fn render_html(document: &Document) -> String {
    let mut page = Page(String::with_capacity(16 * 1024));
    page.head(document);
    page.servers(document);
    page.channels(document);
    page.schemas(document);
    page.0.push_str("</main>\n</body>\n</html>\n");
    page.0
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#f6f8fa;line-height:1.45}
header{background:#24292f;color:#fff;padding:1.2rem 2rem}
header h1{margin:0;font-size:1.6rem}
header .version{font-weight:normal;opacity:.75;font-size:1rem;margin-left:.5rem}
header p{margin:.4rem 0 0}
header a{color:#9ecbff}
main{max-width:72rem;margin:0 auto;padding:1rem 2rem 3rem}
section{margin-top:1.5rem}
h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
article{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1.2rem;margin:.8rem 0}
article h3{margin:.2rem 0 .5rem;font-size:1.15rem}
.address{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;background:#eff1f3;padding:.1rem .4rem;border-radius:4px}
.badge{display:inline-block;font-size:.75rem;font-weight:600;text-transform:uppercase;padding:.1rem .5rem;border-radius:1rem;margin-right:.4rem;color:#fff}
.receive{background:#1a7f37}.send{background:#0969da}.reply{background:#8250df}
table{border-collapse:collapse;margin:.4rem 0;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre{background:#f6f8fa;padding:.6rem;border-radius:4px;overflow:auto}
.muted{color:#656d76}
.operation{border-left:3px solid #d0d7de;padding-left:.8rem;margin:.6rem 0}
";

struct Page(String);

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for element text and attribute values.
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

/// Escaped prose whose `code spans` (Markdown backticks) become `<code>` elements.
fn prose(text: &str) -> String {
    let escaped = escape(text);
    if !escaped.matches('`').count().is_multiple_of(2) {
        return escaped;
    }
    let mut html = String::with_capacity(escaped.len() + 16);
    for (index, part) in escaped.split('`').enumerate() {
        if index % 2 == 1 {
            let _ = write!(html, "<code>{part}</code>");
        } else {
            html.push_str(part);
        }
    }
    html
}

/// The `id` attribute of a named schema's definition.
fn schema_anchor(name: &str) -> String {
    format!("schema-{}", escape(name))
}

/// The name of the schema a `$ref` points to (`#/components/schemas/Order` → `Order`).
fn ref_name(value: &Value) -> Option<&str> {
    value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|target| target.strip_prefix("#/components/schemas/"))
}

/// A short, escaped HTML description of a schema's type: `integer (uint64)`, a link to a
/// named type, `array of …`, `one of …`.
fn type_label(schema: &Value) -> String {
    if let Some(name) = ref_name(schema) {
        return format!("<a href=\"#{}\">{}</a>", schema_anchor(name), escape(name));
    }
    let Some(object) = schema.as_object() else {
        return match schema {
            Value::Bool(true) => "any".to_owned(),
            Value::Bool(false) => "nothing".to_owned(),
            _ => String::new(),
        };
    };
    if let Some(values) = object.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(|v| escape(&v.to_string())).collect();
        return format!("one of <code>{}</code>", values.join("</code>, <code>"));
    }
    if let Some(value) = object.get("const") {
        return format!("<code>{}</code>", escape(&value.to_string()));
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = object.get(keyword).and_then(Value::as_array) {
            let options: Vec<String> = options.iter().map(type_label).collect();
            let joiner = if keyword == "allOf" { " and " } else { " or " };
            return options.join(joiner);
        }
    }
    let types: Vec<String> = match object.get("type") {
        Some(Value::String(name)) => vec![name.clone()],
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let mut labels = Vec::new();
    for name in &types {
        let label = match name.as_str() {
            "array" => match object.get("items") {
                Some(items) => format!("array of {}", type_label(items)),
                None => "array".to_owned(),
            },
            "object" => match object.get("additionalProperties") {
                Some(values @ Value::Object(_)) => format!("map of {}", type_label(values)),
                _ => "object".to_owned(),
            },
            other => escape(other),
        };
        labels.push(label);
    }
    let mut label = if labels.is_empty() {
        "any".to_owned()
    } else {
        labels.join(" or ")
    };
    if let Some(format) = object.get("format").and_then(Value::as_str) {
        let _ = write!(label, " <span class=\"muted\">({})</span>", escape(format));
    }
    label
}

impl Page {
    fn head(&mut self, document: &Document) {
        let title = escape(&document.info.title);
        let version = escape(&document.info.version);
        let _ = write!(
            self.0,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title} {version} · AsyncAPI</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <header>\n<h1>{title}<span class=\"version\">{version}</span></h1>\n"
        );
        if let Some(description) = &document.info.description {
            let _ = writeln!(self.0, "<p>{}</p>", prose(description));
        }
        let _ = write!(
            self.0,
            "<p>AsyncAPI {} · <a href=\"asyncapi.json\">asyncapi.json</a> · \
             <a href=\"asyncapi.yaml\">asyncapi.yaml</a></p>\n</header>\n<main>\n",
            escape(document.asyncapi)
        );
    }

    fn servers(&mut self, document: &Document) {
        if document.servers.is_empty() {
            return;
        }
        self.0.push_str(
            "<section id=\"servers\">\n<h2>Servers</h2>\n<table>\n\
             <tr><th>id</th><th>protocol</th><th>host</th><th>path</th><th>description</th></tr>\n",
        );
        for (id, server) in document.servers.iter() {
            let protocol = match &server.protocol_version {
                Some(version) => format!("{} {}", server.protocol, version),
                None => server.protocol.clone(),
            };
            let _ = writeln!(
                self.0,
                "<tr id=\"server-{id}\"><td>{id}</td><td>{}</td><td><span class=\"address\">{}</span></td><td>{}</td><td>{}</td></tr>",
                escape(&protocol),
                escape(&server.host),
                escape(server.pathname.as_deref().unwrap_or("")),
                escape(server.description.as_deref().unwrap_or("")),
                id = escape(id),
            );
        }
        self.0.push_str("</table>\n");
        for (id, server) in document.servers.iter() {
            if let Some(bindings) = &server.bindings {
                let _ = writeln!(
                    self.0,
                    "<details><summary>Bindings of {}</summary><pre>{}</pre></details>",
                    escape(id),
                    escape(&pretty(bindings))
                );
            }
        }
        self.0.push_str("</section>\n");
    }

    fn channels(&mut self, document: &Document) {
        self.0
            .push_str("<section id=\"channels\">\n<h2>Channels</h2>\n");
        if document.channels.is_empty() {
            self.0
                .push_str("<p class=\"muted\">The app has no channels.</p>\n");
        }
        for (id, channel) in document.channels.iter() {
            self.channel(document, id, channel);
        }
        self.0.push_str("</section>\n");
    }

    fn channel(&mut self, document: &Document, id: &str, channel: &Channel) {
        let address = match &channel.address {
            Some(address) => format!("<span class=\"address\">{}</span>", escape(address)),
            None => "<span class=\"muted\">(the reply-to of each request)</span>".to_owned(),
        };
        let _ = writeln!(
            self.0,
            "<article id=\"channel-{}\">\n<h3>{address}</h3>",
            escape(id)
        );
        if let Some(description) = &channel.description {
            let _ = writeln!(self.0, "<p>{}</p>", prose(description));
        }
        if !channel.servers.is_empty() {
            let servers: Vec<String> = channel
                .servers
                .iter()
                .map(|server| format!("<a href=\"#server-{0}\">{0}</a>", escape(server.id())))
                .collect();
            let _ = writeln!(
                self.0,
                "<p class=\"muted\">channel <code>{}</code> on {}</p>",
                escape(id),
                servers.join(", ")
            );
        }
        let target = format!("#/channels/{id}");
        for (operation_id, operation) in document.operations.iter() {
            if operation.channel.target == target {
                self.operation(document, operation_id, operation);
            }
            if let Some(reply) = &operation.reply
                && reply.channel.target == target
            {
                let _ = writeln!(
                    self.0,
                    "<div class=\"operation\"><span class=\"badge reply\">reply</span> of \
                     <code>{}</code></div>",
                    escape(operation_id)
                );
            }
        }
        for (message_id, message) in channel.messages.iter() {
            self.message(message_id, message);
        }
        self.0.push_str("</article>\n");
    }

    fn operation(&mut self, document: &Document, id: &str, operation: &Operation) {
        let (class, action) = match operation.action {
            Action::Receive => ("receive", "receive"),
            Action::Send => ("send", "send"),
        };
        let _ = write!(
            self.0,
            "<div class=\"operation\" id=\"operation-{id}\"><span class=\"badge {class}\">{action}</span> \
             <code>{id}</code>",
            id = escape(id)
        );
        if let Some(summary) = &operation.summary {
            let _ = write!(self.0, ": {}", prose(summary));
        }
        if let Some(description) = &operation.description {
            let _ = write!(self.0, "<p>{}</p>", prose(description));
        }
        if let Some(reply) = &operation.reply {
            let names: Vec<String> = reply
                .messages
                .iter()
                .filter_map(|message| message_at(document, message))
                .map(|message| escape(&message.name))
                .collect();
            let _ = write!(
                self.0,
                "<p><span class=\"badge reply\">reply</span> answers each request with \
                 <code>{}</code> on <a href=\"#channel-{}\">its reply-to</a></p>",
                names.join("</code>, <code>"),
                escape(reply.channel.id())
            );
        }
        self.0.push_str("</div>\n");
    }

    fn message(&mut self, id: &str, message: &Message) {
        let _ = writeln!(
            self.0,
            "<h4 id=\"message-{}\">Message <code>{}</code> <span class=\"muted\">{}</span></h4>",
            escape(id),
            escape(&message.name),
            escape(&message.content_type)
        );
        if let Some(summary) = &message.summary {
            let _ = writeln!(self.0, "<p>{}</p>", prose(summary));
        }
        match &message.payload {
            Some(payload) => {
                self.0.push_str("<p>Payload: ");
                self.schema_summary(payload);
                self.0.push_str("</p>\n");
            }
            None => self
                .0
                .push_str("<p class=\"muted\">Payload: not documented</p>\n"),
        }
        if let Some(headers) = &message.headers {
            self.0.push_str("<p>Headers: ");
            self.schema_summary(headers);
            self.0.push_str("</p>\n");
        }
    }

    /// A schema's type and, for an inline object, its properties.
    fn schema_summary(&mut self, schema: &Value) {
        self.0.push_str(&type_label(schema));
        if schema.get("properties").is_some() {
            self.properties(schema);
        }
    }

    fn properties(&mut self, schema: &Value) {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        self.0.push_str(
            "<table>\n<tr><th>property</th><th>type</th><th>required</th><th>description</th></tr>\n",
        );
        for (name, property) in properties {
            let _ = writeln!(
                self.0,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                type_label(property),
                if required.contains(&name.as_str()) {
                    "yes"
                } else {
                    ""
                },
                escape(
                    property
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                )
            );
        }
        self.0.push_str("</table>\n");
    }

    fn schemas(&mut self, document: &Document) {
        if document.components.schemas.is_empty() {
            return;
        }
        self.0
            .push_str("<section id=\"schemas\">\n<h2>Schemas</h2>\n");
        for (name, schema) in document.components.schemas.iter() {
            let _ = writeln!(
                self.0,
                "<article id=\"{}\">\n<h3>{}</h3>",
                schema_anchor(name),
                escape(name)
            );
            if let Some(description) = schema.get("description").and_then(Value::as_str) {
                let _ = writeln!(self.0, "<p>{}</p>", prose(description));
            }
            self.0.push_str("<p>");
            self.schema_summary(schema);
            self.0.push_str("</p>\n");
            let _ = writeln!(
                self.0,
                "<details><summary>JSON Schema</summary><pre>{}</pre></details>\n</article>",
                escape(&pretty(schema))
            );
        }
        self.0.push_str("</section>\n");
    }
}

/// The message a reference points to.
fn message_at<'a>(document: &'a Document, reference: &Reference) -> Option<&'a Message> {
    let path = reference.target.strip_prefix("#/channels/")?;
    let (channel, message) = path.split_once("/messages/")?;
    document.channels.get(channel)?.messages.get(message)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn code_spans_become_code() {
        assert_eq!(
            prose("`a<b>` handles `x`"),
            "<code>a&lt;b&gt;</code> handles <code>x</code>"
        );
        assert_eq!(prose("one ` tick"), "one ` tick");
    }

    #[test]
    fn type_labels_name_what_a_schema_holds() {
        assert_eq!(
            type_label(&json!({"type": "integer", "format": "uint64"})),
            "integer <span class=\"muted\">(uint64)</span>"
        );
        assert_eq!(
            type_label(&json!({"type": "array", "items": {"$ref": "#/components/schemas/Line"}})),
            "array of <a href=\"#schema-Line\">Line</a>"
        );
        assert_eq!(
            type_label(&json!({"type": ["string", "null"]})),
            "string or null"
        );
        assert_eq!(
            type_label(&json!({"enum": ["a", "b"]})),
            "one of <code>&quot;a&quot;</code>, <code>&quot;b&quot;</code>"
        );
    }
}
