//! `fake-jailer`: see `banger_fake_firecracker::jailer`. A test double only.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(banger_fake_firecracker::jailer::run(&args))
}
