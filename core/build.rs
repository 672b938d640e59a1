//! Rebuilds fitkart-core when a device migration is added, so `embed_migrations!` sees it.

fn main() {
    println!("cargo::rerun-if-changed=../migrations/device");
}
