//! A W3C `traceparent` and `tracestate` as a client sends them: the caller's span, or
//! none; never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Headers<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

fuzz_target!(|headers: Headers<'_>| {
    let _ = ferroserve_server::traces::caller(headers.traceparent, headers.tracestate);
});
