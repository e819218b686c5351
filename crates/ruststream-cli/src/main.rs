//! `ruststream`: the RustStream command line.
//!
//! ```text
//! ruststream new NAME --broker memory|nats|redis|mqtt [--path DIR] [--ruststream-path DIR]
//! ruststream publish   URL NAME [BODY|-] [--file PATH] [--header K=V].. [--content-type T]
//! ruststream request   URL NAME [BODY|-] [--timeout 5s] ...       prints the reply
//! ruststream subscribe URL NAME [--count N]                        prints what arrives
//! ruststream asyncapi check FILE
//! ruststream asyncapi serve FILE [--addr 127.0.0.1:8000]
//! ruststream completions bash|zsh|fish|elvish|powershell
//! ```
//!
//! A service's own command line (`run`, `asyncapi gen`) is the one `#[ruststream::app]`
//! generates; this tool works from outside any service.
#![forbid(unsafe_code)]

mod asyncapi;
mod client;
mod error;
mod scaffold;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use clap_complete::Shell;

use crate::error::CliError;

/// The RustStream command line: scaffold services, talk to brokers, check and serve
/// AsyncAPI documents.
#[derive(Parser)]
#[command(name = "ruststream", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a service crate: Cargo.toml, src/main.rs with one handler, a test that runs
    /// the app in process, and a README.
    New(NewArgs),
    /// Publish one message to a broker and exit once the broker has it.
    Publish(SendArgs),
    /// Send one message as a request and print the reply (its headers to standard error,
    /// its body to standard output).
    Request {
        #[command(flatten)]
        send: SendArgs,
        /// How long to wait for the reply (for example 500ms, 5s, 1m).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print the messages that arrive on a name, with their headers, until Ctrl-C or
    /// `--count` messages.
    Subscribe {
        /// The broker's URL, such as nats://127.0.0.1:4222, redis://127.0.0.1:6379 or
        /// mqtt://127.0.0.1:1883 (MQTT 5; add ?version=3.1.1 for MQTT 3.1.1).
        url: String,
        /// What to subscribe to: a subject, channel or topic (wildcards as the broker
        /// allows them: `orders.*` on NATS, a glob on Redis, `home/+/temp` on MQTT).
        name: String,
        /// Stop after this many messages.
        #[arg(long, short = 'n', value_name = "N")]
        count: Option<u64>,
    },
    /// Check or serve an AsyncAPI document that a service wrote (`asyncapi gen`).
    #[command(subcommand)]
    Asyncapi(AsyncApiCommand),
    /// Print a completion script for a shell, for example
    /// `ruststream completions bash > ~/.local/share/bash-completion/completions/ruststream`.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

#[derive(Args)]
struct NewArgs {
    /// The service's name: the crate and binary name (letters, digits, `-` and `_`).
    name: String,
    /// The broker the service runs on.
    #[arg(long, value_name = "KIND", value_parser = scaffold::broker_names())]
    broker: String,
    /// The folder to create the crate in (default: NAME in the current folder); it must
    /// not exist or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// Depend on the RustStream crates of this checkout (its root folder) by path instead
    /// of by version from crates.io.
    #[arg(long, value_name = "DIR")]
    ruststream_path: Option<PathBuf>,
}

/// What to send and where.
#[derive(Args)]
struct SendArgs {
    /// The broker's URL, such as nats://127.0.0.1:4222, redis://127.0.0.1:6379 or
    /// mqtt://127.0.0.1:1883 (MQTT 5; add ?version=3.1.1 for MQTT 3.1.1). Credentials may
    /// be in it; they are never printed.
    url: String,
    /// Where to send: a subject, topic or queue.
    name: String,
    /// The body; `-` reads standard input. Empty when neither this nor --file is given.
    #[arg(conflicts_with = "file")]
    body: Option<String>,
    /// Read the body from this file.
    #[arg(long, short, value_name = "PATH")]
    file: Option<PathBuf>,
    /// A header, as NAME=VALUE (repeat for more).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The body's content type, sent in the `content-type` header (such as
    /// application/json).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
}

#[derive(Subcommand)]
enum AsyncApiCommand {
    /// Check a document's structure: AsyncAPI 3, info, and that every reference between
    /// channels, operations, messages and servers resolves. Lists every problem found.
    Check {
        /// The document, JSON or YAML.
        file: PathBuf,
    },
    /// Serve a document as a page (and as JSON at /asyncapi.json) until Ctrl-C.
    Serve {
        /// The document, JSON or YAML.
        file: PathBuf,
        /// The address to listen on (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8000", value_name = "HOST:PORT")]
        addr: SocketAddr,
    },
}

/// `NAME=VALUE` as a header.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "`{text}` is not a header: write it as NAME=VALUE, such as --header trace-id=42"
        )),
    }
}

/// `500ms`, `5s`, `2m` or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration: write it as 500ms, 5s or 2m");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::New(args) => {
            let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
            let options = scaffold::Options {
                name: args.name,
                broker: args.broker,
                ruststream_path: args.ruststream_path,
            };
            scaffold::generate(&options, &dir)?;
            println!(
                "created the {} service `{}` in {}\n\n    cd {}\n    cargo run -- run\n    cargo test",
                options.broker,
                options.name,
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Command::Publish(send) => block_on(async move {
            let message = send.message().await?;
            client::publish(&send.url, &message).await
        }),
        Command::Request { send, timeout } => block_on(async move {
            let message = send.message().await?;
            client::request(&send.url, &message, timeout).await
        }),
        Command::Subscribe { url, name, count } => {
            block_on(async move { client::subscribe(&url, &name, count).await })
        }
        Command::Asyncapi(AsyncApiCommand::Check { file }) => {
            let report = asyncapi::check_file(&file)?;
            println!("{report}");
            Ok(())
        }
        Command::Asyncapi(AsyncApiCommand::Serve { file, addr }) => {
            let document = asyncapi::load(&file)?;
            block_on(asyncapi::serve(document, addr))
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ruststream",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

impl SendArgs {
    /// The message the arguments describe: body from the argument, the file or standard
    /// input.
    async fn message(&self) -> Result<client::Message, CliError> {
        let body = match (&self.body, &self.file) {
            (_, Some(path)) => tokio::fs::read(path)
                .await
                .map_err(|source| CliError::Read {
                    path: path.clone(),
                    source,
                })?,
            (Some(body), None) if body == "-" => {
                use tokio::io::AsyncReadExt as _;
                let mut body = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut body)
                    .await
                    .map_err(|source| CliError::Read {
                        path: PathBuf::from("-"),
                        source,
                    })?;
                body
            }
            (Some(body), None) => body.clone().into_bytes(),
            (None, None) => Vec::new(),
        };
        let mut headers = self.headers.clone();
        if let Some(content_type) = &self.content_type {
            headers.push((
                ruststream::headers::CONTENT_TYPE.to_owned(),
                content_type.clone(),
            ));
        }
        Ok(client::Message {
            name: self.name.clone(),
            body,
            headers,
        })
    }
}

/// Runs `future` on a multi-thread tokio runtime.
fn block_on(future: impl Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_has_help() {
        fn check(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name());
            assert!(command.get_about().is_some(), "`{path}` has no help");
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "`{path} {id}` has no help");
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    check(sub, &path);
                }
            }
        }
        check(&Cli::command(), "");
    }

    #[test]
    fn headers_parse_as_name_equals_value() {
        assert_eq!(
            parse_header("trace-id=a=b"),
            Ok(("trace-id".to_owned(), "a=b".to_owned()))
        );
        assert!(parse_header("novalue").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_header("=x").is_err());
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5h").is_err());
    }
}
