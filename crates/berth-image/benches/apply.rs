//! Applying a generated ~100 MB, three-layer gzip image to a directory:
//! many small files in nested directories, a few large ones, and an upper
//! layer with whiteouts and an opaque directory.
//!
//! `cargo bench -p berth-image --bench apply`; set `BERTH_BENCH_DIR` to
//! extract somewhere other than the system temp directory.

use berth_image::diff::{apply, ApplyOptions};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::io::Write;

/// A small deterministic generator (xorshift), so every run applies the
/// same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` bytes, half random and half text, so gzip has work to do
    /// without shrinking everything to nothing.
    fn data(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let r = self.next();
            if r.is_multiple_of(2) {
                out.extend_from_slice(&r.to_le_bytes());
            } else {
                out.extend_from_slice(b"lorem ipsum dolor ");
            }
        }
        out.truncate(len);
        out
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h
}

fn add_dir(b: &mut tar::Builder<impl Write>, name: &str) {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, name, &[][..]).expect("dir");
}

fn add_file(b: &mut tar::Builder<impl Write>, name: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, name, data).expect("file");
}

fn gz_layer(fill: impl FnOnce(&mut tar::Builder<&mut Vec<u8>>)) -> Vec<u8> {
    let mut tar = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar);
        fill(&mut b);
        b.finish().expect("tar");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    gz.finish().expect("gzip")
}

/// Three layers, about 100 MB uncompressed in all.
fn image() -> (Vec<Vec<u8>>, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    let small = gz_layer(|b| {
        for d in 0..100 {
            add_dir(b, &format!("usr/share/d{d}/"));
            for f in 0..100 {
                let len = 512 + (rng.next() % 7680) as usize;
                total += len as u64;
                add_file(b, &format!("usr/share/d{d}/f{f}"), &rng.data(len));
            }
        }
    });
    let large = gz_layer(|b| {
        add_dir(b, "opt/");
        for i in 0..4 {
            let len = 12 << 20;
            total += len as u64;
            add_file(b, &format!("opt/blob{i}"), &rng.data(len));
        }
    });
    let upper = gz_layer(|b| {
        for d in 0..50 {
            add_file(b, &format!("usr/share/d{d}/.wh.f0"), b"");
        }
        add_file(b, "usr/share/d99/.wh..wh..opq", b"");
        for f in 0..5000 {
            let len = 256 + (rng.next() % 4096) as usize;
            total += len as u64;
            add_file(b, &format!("etc/conf{}/c{f}", f % 50), &rng.data(len));
        }
    });
    (vec![small, large, upper], total)
}

fn bench_apply(c: &mut Criterion) {
    let (layers, content) = image();
    let compressed: usize = layers.iter().map(Vec::len).sum();
    eprintln!(
        "image: {} layers, {:.1} MB of file content, {:.1} MB gzip",
        layers.len(),
        content as f64 / 1e6,
        compressed as f64 / 1e6
    );
    let base = std::env::var_os("BERTH_BENCH_DIR").map(std::path::PathBuf::from);
    let options = ApplyOptions::default();
    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(content));
    group.bench_function("three_gzip_layers_100MB", |bench| {
        bench.iter_batched(
            || match &base {
                Some(dir) => tempfile::tempdir_in(dir).expect("tempdir"),
                None => tempfile::tempdir().expect("tempdir"),
            },
            |dir| {
                for layer in &layers {
                    apply(&layer[..], dir.path(), &options).expect("apply");
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
