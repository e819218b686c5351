//! Misuse of the contract that must not compile: settling a message twice, finishing a
//! transaction twice, two live streams of one subscriber, a message outliving its payload.
//!
//! The expected compiler output lives next to each case (`compile_fail/*.stderr`); after a
//! compiler upgrade, regenerate it with `TRYBUILD=overwrite cargo test --all-features
//! --test compile_fail` and review the diff.
#![cfg(feature = "memory")]

#[test]
fn misuse_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
