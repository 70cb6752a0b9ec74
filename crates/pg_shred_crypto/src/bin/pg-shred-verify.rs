//! pg-shred-verify: check an erasure receipt of pg_shred offline, with the database's public
//! key (`SELECT shred.receipt_public_key()`), without a database.
//!
//! ```text
//! pg-shred-verify --public-key <base64> <receipt.json | ->
//! ```
//!
//! Exit status: 0 when the receipt's signature is valid, 1 when it is not (or the receipt does
//! not parse), 2 on a usage error (no key, a key that is not 32 bytes of base64, an unreadable
//! file).

use std::io::Read;
use std::process::ExitCode;

use pg_shred_crypto::receipt;

const USAGE: &str = "usage: pg-shred-verify --public-key <base64> <receipt.json | ->";

fn main() -> ExitCode {
    let mut key = None;
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--public-key" => key = args.next(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if arg.starts_with("--public-key=") => key = Some(arg["--public-key=".len()..].to_string()),
            _ if file.is_none() => file = Some(arg),
            _ => return usage("more than one receipt file"),
        }
    }
    let (Some(key), Some(file)) = (key, file) else { return usage("a public key and a receipt file are required") };
    let Some(key) = receipt::parse_public_key(&key) else { return usage("the public key is not 32 bytes of base64") };
    let mut text = Vec::new();
    let read = if file == "-" {
        std::io::stdin().read_to_end(&mut text).map(|_| ())
    } else {
        std::fs::read(&file).map(|bytes| text = bytes)
    };
    if let Err(e) = read {
        eprintln!("pg-shred-verify: cannot read {file}: {e}");
        return ExitCode::from(2);
    }
    if receipt::verify_json(&key, &text) {
        println!("valid");
        ExitCode::SUCCESS
    } else {
        println!("invalid");
        ExitCode::from(1)
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("pg-shred-verify: {why}\n{USAGE}");
    ExitCode::from(2)
}
