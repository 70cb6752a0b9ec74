#![cfg(feature = "integration")]
#[test]
fn placeholder() {}
