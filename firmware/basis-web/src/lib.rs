//! The browser client's WebAssembly module: `basis-core` and `basis-e2ee` behind a
//! wasm-bindgen API, so the browser runs the same protocol code as the command-line client and
//! the node, never a second implementation in JavaScript.
//!
//! What it offers (JavaScript names):
//!
//! - [`User`]: `User.create()`, `User.openKeyFile(text, passphrase)`, `exportKeyFile`,
//!   `userId`, `agreementKey`, the sign-in answer (`signChallenge`, `signInRequest`) and
//!   signed events (`createRoom`, `membership`, `receipt`, `profile`, `message`).
//! - [`Draft`]: a message body (`text`, `edit`, `deletion`, `reaction`) to sign as is in a
//!   plain room or to encrypt first.
//! - [`RoomCrypto`]: one room's Megolm sessions: `encrypt` (with the HPKE key share when the
//!   session rotates), `absorb`, `decrypt`, `timeline`, and sealed state to keep between
//!   visits.
//! - [`FileSealer`] and [`FileOpener`]: a file sealed chunk by chunk into its chunk list,
//!   content address and file message (`draft`), and opened chunk by chunk after download
//!   (`RoomCrypto.fileOpener`).
//! - [`validate_event`] (`validateEvent`): decodes and checks event bytes.
//! - [`qr_svg`] (`qrSvg`) and [`decode_qr`] (`decodeQr`): QR codes to show a key and to read
//!   one from a photo.
//!
//! Errors are thrown as strings in the user's words ([`WebError`]). Times the node writes as
//! JSON numbers exceed 2^53, so functions that need them take the node's reply text as it came
//! (never re-serialised by `JSON.parse`) and return times as decimal strings.
//!
//! The module compiles for the host as well, where the tests run; only the browser's clock,
//! randomness and panic hook are WebAssembly-only.

use wasm_bindgen::prelude::*;

mod crypto;
mod error;
mod event;
mod file;
mod qr;
mod reply;
mod user;

pub use crypto::{RoomCrypto, Sealed};
pub use error::WebError;
pub use event::{Draft, validate_event};
pub use file::{FileOpener, FileSealer};
pub use qr::{decode_qr, qr_svg};
pub use user::User;

/// Runs when the module is instantiated: installs the panic hook, so a panic shows its message
/// (and where it happened) on the browser console rather than a bare `unreachable`.
#[wasm_bindgen(start)]
pub fn start() {
    #[cfg(target_arch = "wasm32")]
    console_error_panic_hook::set_once();
}

/// The version of this module (the workspace version).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Panics with `message` on purpose, to check that the panic hook reports panics. Diagnostic
/// only; the module cannot be used after a panic and must be loaded again.
#[wasm_bindgen(js_name = panicForDiagnostics)]
pub fn panic_for_diagnostics(message: &str) {
    panic!("diagnostic panic: {message}");
}

/// Wall-clock milliseconds since the Unix epoch: the browser's clock in WebAssembly.
#[cfg(target_arch = "wasm32")]
pub(crate) fn now_ms() -> u64 {
    // Date.now() is a whole, non-negative number of milliseconds well below 2^53.
    js_sys::Date::now() as u64
}

/// Wall-clock milliseconds since the Unix epoch (host builds, for tests).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
