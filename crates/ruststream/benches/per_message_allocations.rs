//! Heap allocations per message of the per-message scenarios, counted with dhat.
//!
//! ```sh
//! cargo bench -p ruststream --features memory,macros --bench per_message_allocations [-- <scenario>... --m <M>]
//! ```
//!
//! For each scenario (all by default): set it up, handle a warm-up run, then runs of `M`
//! and `2M` messages, and print `(blocks at 2M - blocks at M) / M`. The plain loop's count
//! is the user's own allocation (the decoded `String`); a framework scenario's count minus
//! its plain loop's is what the framework allocates per message. The scenarios are those
//! of the `per_message` bench (see `support/per_message.rs`).

#[path = "support/per_message.rs"]
mod scenarios;

use scenarios::{Bench, Scenario};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const WARM_UP: u64 = 10_000;

fn blocks(bench: &mut Bench, n: u64) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    bench.run(n);
    dhat::HeapStats::get().total_blocks - before
}

fn main() {
    let mut m: u64 = 100_000;
    let mut selected = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--m" => {
                m = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&v| v > 0)
                    .unwrap_or_else(|| usage())
            }
            flag if flag.starts_with("--") => {} // `cargo bench` passes `--bench`
            name => selected.push(Scenario::parse(name).unwrap_or_else(|| usage())),
        }
    }
    if selected.is_empty() {
        selected = Scenario::ALL.to_vec();
    }
    let _profiler = dhat::Profiler::builder().testing().build();
    for scenario in selected {
        let mut bench = Bench::start(scenario);
        blocks(&mut bench, WARM_UP);
        let at_m = blocks(&mut bench, m);
        let at_2m = blocks(&mut bench, 2 * m);
        bench.finish();
        let per_message = (at_2m as f64 - at_m as f64) / m as f64;
        println!(
            "{:<20} {per_message:.3} allocations per message (M = {m}: {at_m} blocks, 2M: {at_2m} blocks)",
            scenario.name()
        );
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: per_message_allocations [<scenario>...] [--m <M>]\n  scenarios: {}",
        Scenario::names()
    );
    std::process::exit(2);
}
