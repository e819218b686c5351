//! A service's command line (feature `cli`): what `#[ruststream::app]` makes `main` of.
//!
//! ```text
//! service run                                   start, serve until Ctrl-C or SIGTERM
//! service asyncapi gen [--format json|yaml] [--output FILE]
//! service asyncapi serve [--addr 127.0.0.1:8000]   the document as a page, offline-ready
//! service --help | --version
//! ```
//!
//! `#[ruststream::app]` on the function that builds the app generates `main`; by hand, it
//! is one line:
//!
//! ```no_run
//! use ruststream::runtime::App;
//!
//! fn app() -> App {
//!     App::new("orders").version("1.0.0")
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     ruststream::cli::main(app)
//! }
//! ```
//!
//! The builder (`fn app() -> App` or `async fn app() -> App`) runs on the tokio runtime
//! for every command that needs the app, including `asyncapi gen` and `--version`: it
//! should build, not connect (connecting is the job of `run`, and of lifespan hooks).

use std::ffi::OsString;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::asyncapi::{self, AsyncApiError};
use crate::runtime::{App, AppError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The tokio runtime could not be built.
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The app failed to start, run or stop.
    #[error(transparent)]
    App(#[from] AppError),
    /// The AsyncAPI document could not be serialized.
    #[error(transparent)]
    AsyncApi(#[from] AsyncApiError),
    /// The page server could not listen or serve.
    #[error("cannot serve the AsyncAPI page on {addr}: {source}")]
    Serve {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write to `{}`: {source}", path.display())]
    Write {
        /// Where (`-` for standard output).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The serialization of a generated document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DocFormat {
    /// Pretty-printed JSON.
    #[default]
    Json,
    /// YAML.
    Yaml,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `run`: start the service and serve until Ctrl-C or SIGTERM.
    Run {
        /// `--http ADDR`: also serve `/metrics`, `/health/*` and `/asyncapi*` there.
        http: Option<SocketAddr>,
    },
    /// `asyncapi gen`: write the AsyncAPI document.
    AsyncApiGen {
        /// `--format`.
        format: DocFormat,
        /// `--output`; standard output when `None`.
        output: Option<PathBuf>,
    },
    /// `asyncapi serve`: serve the document as a page, and as JSON and YAML.
    AsyncApiServe {
        /// `--addr` (port 0 picks a free port; the address is printed).
        addr: SocketAddr,
    },
    /// `--version`: print the app's title and version.
    Version,
}

/// A command line that is not a command: a usage error, or `--help`.
#[derive(Debug)]
pub struct Usage(clap::Error);

impl Usage {
    /// Prints the message: help to standard output, errors to standard error.
    pub fn print(&self) {
        let _ = self.0.print();
    }

    /// The process exit code: 0 for help, 2 for a usage error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(u8::try_from(self.0.exit_code()).unwrap_or(2))
    }

    /// Whether this is the help that `--help` asked for (not an error).
    pub fn is_help(&self) -> bool {
        !self.0.use_stderr()
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.render())
    }
}

impl std::error::Error for Usage {}

#[derive(Parser)]
#[command(
    about = "A RustStream service.",
    disable_version_flag = true,
    subcommand_required = false
)]
struct Args {
    /// Print the app's title and version.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<TopCommand>,
}

#[derive(Subcommand)]
enum TopCommand {
    /// Start the service and serve until Ctrl-C or SIGTERM, then shut down gracefully
    /// (log level from RUST_LOG, default info).
    Run {
        /// Also serve /metrics, /health/live, /health/ready and the AsyncAPI page at this
        /// address (for example 127.0.0.1:9000).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
    /// The service's AsyncAPI document.
    #[command(subcommand)]
    Asyncapi(AsyncApiCommand),
}

#[derive(Subcommand)]
enum AsyncApiCommand {
    /// Print the AsyncAPI 3.0 document (or write it to a file). Starts nothing.
    Gen {
        /// The serialization.
        #[arg(long, value_enum, default_value_t = FormatArg::Json)]
        format: FormatArg,
        /// Write to FILE instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Serve the document as a page (rendered on the server: readable offline, without
    /// scripts), and at /asyncapi.json and /asyncapi.yaml, until Ctrl-C. Starts no broker.
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = DEFAULT_SERVE_ADDR, value_name = "HOST:PORT")]
        addr: SocketAddr,
    },
}

/// Where `asyncapi serve` listens by default.
pub const DEFAULT_SERVE_ADDR: &str = "127.0.0.1:8000";

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Yaml,
}

impl Command {
    /// Parses a command line (`args[0]` is the program name).
    pub fn parse_from<I, T>(args: I) -> Result<Self, Usage>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Args::command();
        if let Some(program) = args
            .first()
            .and_then(|program| std::path::Path::new(program).file_name())
        {
            command = command.bin_name(program.to_string_lossy().into_owned());
        }
        let parsed = command
            .try_get_matches_from_mut(args)
            .and_then(|matches| Args::from_arg_matches(&matches))
            .map_err(|error| Usage(error.format(&mut command)))?;
        match (parsed.version, parsed.command) {
            (true, _) => Ok(Command::Version),
            (false, Some(TopCommand::Run { http })) => Ok(Command::Run { http }),
            (false, Some(TopCommand::Asyncapi(AsyncApiCommand::Gen { format, output }))) => {
                Ok(Command::AsyncApiGen {
                    format: match format {
                        FormatArg::Json => DocFormat::Json,
                        FormatArg::Yaml => DocFormat::Yaml,
                    },
                    output,
                })
            }
            (false, Some(TopCommand::Asyncapi(AsyncApiCommand::Serve { addr }))) => {
                Ok(Command::AsyncApiServe { addr })
            }
            (false, None) => Err(Usage(command.error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is needed: `run` starts the service, `asyncapi gen` prints its \
                 AsyncAPI document (see --help)",
            ))),
        }
    }
}

/// Marks builders that return the [`App`] directly (`fn app() -> App`).
#[derive(Debug)]
pub enum Returns {}

/// Marks builders that return a future of the [`App`] (`async fn app() -> App`).
#[derive(Debug)]
pub enum Awaits {}

/// A function that builds the app: `fn() -> App` or `async fn() -> App` (closures too).
///
/// The `Marker` parameter ([`Returns`] or [`Awaits`]) only tells the two apart; it is
/// inferred.
pub trait BuildApp<Marker> {
    /// Builds the app.
    fn build(self) -> impl Future<Output = App>;
}

impl<F: FnOnce() -> App> BuildApp<Returns> for F {
    // Built inside the runtime, so the builder may spawn or create tokio resources.
    async fn build(self) -> App {
        self()
    }
}

impl<F, Fut> BuildApp<Awaits> for F
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = App>,
{
    fn build(self) -> impl Future<Output = App> {
        self()
    }
}

/// The `main` of a service: parses the process's arguments and runs the command.
///
/// Help and usage errors are printed by clap (exit code 0 and 2); a failed command prints
/// `error: ..` to standard error and exits with 1.
pub fn main<M>(build: impl BuildApp<M>) -> ExitCode {
    main_from(std::env::args_os(), build)
}

/// [`main`] with the arguments given (`args[0]` is the program name).
pub fn main_from<M, I, T>(args: I, build: impl BuildApp<M>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = match Command::parse_from(args) {
        Ok(command) => command,
        Err(usage) => {
            usage.print();
            return usage.exit_code();
        }
    };
    match execute(command, build) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command: builds a multi-thread tokio runtime, builds the app on it, and runs,
/// documents or names it.
pub fn execute<M>(command: Command, build: impl BuildApp<M>) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    match command {
        Command::Run { http } => {
            crate::logging::init();
            runtime.block_on(async {
                let app = build.build().await;
                let app = match http {
                    Some(addr) => app.http(addr),
                    None => app,
                };
                app.run().await
            })?;
            Ok(())
        }
        Command::AsyncApiGen { format, output } => {
            let app = runtime.block_on(build.build());
            let mut text = render(&app, format)?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            write_output(output, &text)
        }
        Command::AsyncApiServe { addr } => runtime.block_on(async {
            let app = build.build().await;
            let document = asyncapi::document(&app.describe());
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CliError::Serve { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| CliError::Serve { addr, source })?;
            write_output(
                None,
                &format!("serving the AsyncAPI page on http://{local}/ (Ctrl-C stops)\n"),
            )?;
            serve_asyncapi(listener, &document, shutdown_signal())
                .await
                .map_err(|source| CliError::Serve { addr, source })
        }),
        Command::Version => {
            let app = runtime.block_on(build.build());
            let info = app.info();
            write_output(None, &format!("{} {}\n", info.title, info.version))
        }
    }
}

/// The app's AsyncAPI document, serialized.
pub fn render(app: &App, format: DocFormat) -> Result<String, CliError> {
    let document = asyncapi::document(&app.describe());
    Ok(match format {
        DocFormat::Json => document.to_json()?,
        DocFormat::Yaml => document.to_yaml()?,
    })
}

/// The routes of the AsyncAPI page: `/` (the page, [`asyncapi::render_html`]),
/// `/asyncapi.json` and `/asyncapi.yaml`. Each is rendered once, here.
pub fn asyncapi_routes(document: &asyncapi::Document) -> Result<axum::Router, CliError> {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;

    let html = asyncapi::render_html(document);
    let json = document.to_json()?;
    let yaml = document.to_yaml()?;
    let page = move || {
        let html = html.clone();
        async move { ([(CONTENT_TYPE, "text/html; charset=utf-8")], html) }
    };
    let json = move || {
        let json = json.clone();
        async move { ([(CONTENT_TYPE, "application/json")], json) }
    };
    let yaml = move || {
        let yaml = yaml.clone();
        async move { ([(CONTENT_TYPE, "application/yaml")], yaml) }
    };
    Ok(axum::Router::new()
        .route("/", get(page.clone()))
        .route("/asyncapi", get(page))
        .route("/asyncapi.json", get(json))
        .route("/asyncapi.yaml", get(yaml)))
}

/// Serves [`asyncapi_routes`] of `document` on `listener` until `shutdown` completes.
pub async fn serve_asyncapi(
    listener: tokio::net::TcpListener,
    document: &asyncapi::Document,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = asyncapi_routes(document).map_err(std::io::Error::other)?;
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM; never, if they cannot be listened for.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn write_output(output: Option<PathBuf>, text: &str) -> Result<(), CliError> {
    match output {
        Some(path) => {
            std::fs::write(&path, text).map_err(|source| CliError::Write { path, source })
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|source| CliError::Write {
                    path: PathBuf::from("-"),
                    source,
                })
        }
    }
}
