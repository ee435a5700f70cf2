//! `basis`: the node daemon (`basis run`), its admin tools and the chat client. Everything is
//! in the library; see `lib.rs`.

fn main() -> std::process::ExitCode {
    basis::main()
}
