//! Misuse of `#[subscriber]` and `#[ruststream::app]` that must not compile, each with an
//! error that names the fix and points at the offending tokens.
//!
//! The expected compiler output lives next to each case (`macro_ui/*.stderr`); after a
//! compiler upgrade, regenerate it with `TRYBUILD=overwrite cargo test -p ruststream
//! --all-features --test macro_ui` and review the diff.
#![cfg(all(feature = "macros", feature = "cli", feature = "memory"))]

#[test]
fn macro_misuse_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/macro_ui/*.rs");
}
