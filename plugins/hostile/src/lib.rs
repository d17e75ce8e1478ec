//! A hostile plugin for the host's tests: its subscription config picks one
//! way to attack the sandbox.
//!
//! `{"mode": ..., "amount": N}` selects the attack; every one must end as a
//! failed transform while the host and every other delivery carry on. What
//! Rust cannot produce (several linear memories, an import the host does not
//! provide) is written by hand in `wat/` beside this crate. Built for
//! `wasm32-wasip2` by the host's tests; not meant to be deployed.

use hookshape_plugin_sdk::{Error, Event, Outcome, Request, Subscription, Transform};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    /// Compute forever.
    Spin,
    /// Ask for `amount` bytes in one allocation and touch them all.
    Hoard,
    /// Recurse until the stack runs out.
    Recurse,
    /// Deliver a body of `amount` bytes.
    HugeBody,
    /// Deliver `amount` extra headers.
    ManyHeaders,
    /// Ask `wasi:random` for `amount` bytes at once.
    Random,
    /// Open `amount` WASI resources (pollables) and keep them all.
    Resources,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: Mode,
    #[serde(default)]
    amount: u64,
}

struct Hostile;

impl Transform for Hostile {
    fn transform(event: Event, subscription: Subscription) -> Result<Outcome, Error> {
        let config: Config = subscription.config()?;
        let amount = config.amount;
        match config.mode {
            Mode::Spin => spin(),
            Mode::Hoard => {
                let hoard = vec![1u8; to_usize(amount)];
                Ok(Outcome::skip(format!("hoarded {} bytes", hoard.len())))
            }
            Mode::Recurse => Ok(Outcome::skip(format!("recursed {}", recurse(amount)))),
            Mode::HugeBody => {
                Ok(Request::new(vec![b'x'; to_usize(amount)], event.content_type).into())
            }
            Mode::ManyHeaders => Ok((0..amount)
                .fold(Request::new(event.payload, event.content_type), |r, i| {
                    r.header(format!("x-hostile-{i}"), "x")
                })
                .into()),
            Mode::Random => {
                let bytes = wasip2::random::random::get_random_bytes(amount);
                Ok(Outcome::skip(format!("got {} random bytes", bytes.len())))
            }
            Mode::Resources => {
                let held: Vec<_> = (0..amount)
                    .map(|_| wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40))
                    .collect();
                Ok(Outcome::skip(format!("held {} resources", held.len())))
            }
        }
    }
}

hookshape_plugin_sdk::export_transform!(Hostile);

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Not a tail call, so every level takes a frame of the Wasm stack.
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(depth - 1))).wrapping_mul(3) ^ depth
}

fn to_usize(amount: u64) -> usize {
    usize::try_from(amount).unwrap_or(usize::MAX)
}
