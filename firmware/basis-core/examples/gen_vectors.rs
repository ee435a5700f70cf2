//! Writes the committed test vectors (`tests/vectors/events.json`) to standard output.
//!
//! Run `cargo run -p basis-core --example gen_vectors > tests/vectors/events.json` after a
//! deliberate change of the encoding; the test `vectors` fails until the file matches.

use basis_core::vectors::all_vectors;

fn main() {
    let text = serde_json::to_string_pretty(&all_vectors()).unwrap_or_default();
    println!("{text}");
}
