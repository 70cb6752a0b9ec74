//! Criterion benchmarks of the pure core (no PostgreSQL): `cargo bench -p pg_shred_crypto`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use pg_shred_crypto::envelope;
use pg_shred_crypto::keys::{DataKey, RootKey};

fn seal_open(c: &mut Criterion) {
    let dek = DataKey::from_bytes(&[0x42; 32]);
    let mut g = c.benchmark_group("envelope");
    for size in [16usize, 64, 1024, 64 * 1024] {
        let pt = vec![0x61u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal", size), &pt, |b, pt| {
            b.iter(|| envelope::seal(&dek, 7, b"customer.email", black_box(pt)))
        });
        let sealed = envelope::seal(&dek, 7, b"customer.email", &pt).expect("seal");
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, sealed| {
            b.iter(|| {
                let env = envelope::parse(black_box(sealed)).expect("parse");
                envelope::open(&dek, &env, b"customer.email")
            })
        });
    }
    g.finish();
}

fn keys(c: &mut Criterion) {
    let root = RootKey::parse(&[0x01; 32]).expect("root");
    let salt = [0x02u8; 32];
    let kek = root.kek(&salt);
    let dek = DataKey::generate().expect("rng");
    let wrapped = kek.wrap(&dek, 1, b"customer:1").expect("wrap");
    c.bench_function("dek/wrap", |b| b.iter(|| kek.wrap(&dek, 1, black_box(b"customer:1"))));
    c.bench_function("dek/unwrap", |b| b.iter(|| kek.unwrap(black_box(&wrapped), 1, b"customer:1")));
    c.bench_function("dek/generate", |b| b.iter(DataKey::generate));
    c.bench_function("dek/from-bytes", |b| b.iter(|| DataKey::from_bytes(black_box(&[0x42; 32]))));
    c.bench_function("hkdf/derive-kek", |b| b.iter(|| root.kek(black_box(&salt))));
}

criterion_group!(benches, seal_open, keys);
criterion_main!(benches);
