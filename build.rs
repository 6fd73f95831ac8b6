//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/` at compile time but only tracks the ones it already saw.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
