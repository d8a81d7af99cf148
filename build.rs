// `sqlx::migrate!` embeds the migrations at compile time, and Cargo cannot see a file the macro
// reads: without this, a migration added or edited leaves a build without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
