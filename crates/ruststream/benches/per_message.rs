//! Whole-process instructions per message, for callgrind (SPEC §5).
//!
//! ```sh
//! scripts/bench-callgrind            # builds this, runs every scenario at M and 2M, prints the table
//! target/release/deps/per_message-<hash> <scenario> <count>   # one run, as the script does
//! ```
//!
//! Runs one scenario over `count` messages and exits. Under
//! `valgrind --tool=callgrind`, `(count at 2M - count at M) / M` is the steady-state cost
//! of one message with set-up and tear-down cancelled out; the `framework-*` scenarios
//! minus the plain loop is the framework's own cost. Scenarios:
//!
//! - `plain`: decode the SPEC §5 body into `Order` and read its fields, in a loop;
//! - `plain-raw`: read one byte of the body, in a loop;
//! - `framework-json`: an `App` on a `MemoryBroker`, one `#[subscriber]` handler taking
//!   `Order`; a publisher loop publishes the raw body `count` times with
//!   `MemoryBroker::publish` and waits until all were handled;
//! - `framework-json-fn`: the same with `handler_fn`;
//! - `framework-json-manual`: the same with a hand-written `Handler`, as the macro
//!   generates it;
//! - `framework-raw`: the same with a `Raw<'_>` argument, reading one byte;
//! - `framework-workers4`: `framework-json` with `workers = 4`;
//! - `framework-json-metrics`, `framework-json-tracing`, `framework-json-otel`:
//!   `framework-json` with Prometheus metrics, a `tracing` subscriber at `info`, or the
//!   OpenTelemetry layer installed (features `metrics`, `logging`, `otel`).

#[path = "support/per_message.rs"]
mod scenarios;

use scenarios::{Bench, Scenario};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; without a scenario, run a quick smoke of each.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        [] => {
            for &scenario in Scenario::ALL {
                run(scenario, 1_000);
                println!("{}: ok", scenario.name());
            }
        }
        [scenario, count] => {
            let Some(scenario) = Scenario::parse(scenario) else {
                usage();
            };
            let Ok(count) = count.parse::<u64>() else {
                usage();
            };
            run(scenario, count);
        }
        _ => usage(),
    }
}

fn run(scenario: Scenario, count: u64) {
    let mut bench = Bench::start(scenario);
    bench.run(count);
    bench.finish();
}

fn usage() -> ! {
    eprintln!(
        "usage: per_message <scenario> <count>\n  scenarios: {}",
        Scenario::names()
    );
    std::process::exit(2);
}
