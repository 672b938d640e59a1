//! Rebuilds fitkart-sync-server when a server migration is added, so `embed_migrations!` sees
//! it (cargo tracks the files a crate's source includes, not a directory a macro lists).

fn main() {
    println!("cargo::rerun-if-changed=../migrations/server");
}
