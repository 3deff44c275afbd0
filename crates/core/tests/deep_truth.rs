//! Deep renders against brute force at published locations.
//!
//! Each `tests/data/deep/*.json` is a 64×64 grid of the location's view
//! iterated pixel by pixel in MPFR by tools/deep_truth.py (an independent
//! program), at a precision P where P and 2P bits agree on every pixel.
//! The renderer must agree on at least 99.9 % of pixels, with no blob of
//! wrong counts (a glitch); each test prints what differs.

use mandel_core::deep::{self, BLA_EPSILON, DeepRenderer, DeepView};
use serde::Deserialize;

#[derive(Deserialize)]
struct Truth {
    name: String,
    re: String,
    im: String,
    zoom: String,
    max_iter: u32,
    n: u64,
    precision_bits: u32,
    counts: Vec<u32>,
}

fn truth(name: &str) -> Truth {
    let path = format!("{}/tests/data/deep/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let t: Truth = serde_json::from_str(&text).unwrap();
    assert_eq!(t.counts.len() as u64, t.n * t.n, "{path}");
    t
}

/// Pixels that differ, and the largest 4-connected group of them.
fn compare(t: &Truth, got: &[u32]) -> (Vec<usize>, usize) {
    let n = t.n as usize;
    let wrong: Vec<usize> = (0..n * n).filter(|&k| got[k] != t.counts[k]).collect();
    let mut seen = vec![false; n * n];
    let mut largest = 0;
    for &start in &wrong {
        if seen[start] {
            continue;
        }
        let (mut stack, mut size) = (vec![start], 0);
        seen[start] = true;
        while let Some(k) = stack.pop() {
            size += 1;
            let (i, j) = (k / n, k % n);
            let near = [
                (i > 0).then(|| k - n),
                (i + 1 < n).then(|| k + n),
                (j > 0).then(|| k - 1),
                (j + 1 < n).then(|| k + 1),
            ];
            for m in near.into_iter().flatten() {
                if !seen[m] && got[m] != t.counts[m] {
                    seen[m] = true;
                    stack.push(m);
                }
            }
        }
        largest = largest.max(size);
    }
    (wrong, largest)
}

fn check(name: &str, epsilon: f64, extended: bool) {
    let t = truth(name);
    let view = DeepView::parse(&t.re, &t.im, &t.zoom).unwrap();
    let orbit = deep::reference_orbit(&view, t.n, t.max_iter);
    let renderer = DeepRenderer::new(&view, t.n, t.max_iter, &orbit, epsilon);
    assert_eq!(renderer.is_extended(), extended, "number type at {name}");
    let mut got = vec![0u32; (t.n * t.n) as usize];
    let work = renderer.render(0..t.n, 0..t.n, &mut got);
    let (wrong, largest) = compare(&t, &got);
    let agree = 1.0 - wrong.len() as f64 / got.len() as f64;
    let brute: u64 = t
        .counts
        .iter()
        .map(|&c| u64::from(c.min(t.max_iter - 1)) + 1)
        .sum();
    eprintln!(
        "{}: zoom {}, {} iterations, truth at {} bits; epsilon {epsilon:e}: {:.3} % agree \
         ({} of {} differ, largest group {largest}); reference {} points; \
         {} steps + {} BLA skips + {} rebases for {brute} brute-force iterations",
        t.name,
        t.zoom,
        t.max_iter,
        t.precision_bits,
        agree * 100.0,
        wrong.len(),
        got.len(),
        orbit.len(),
        work.steps,
        work.skips,
        work.rebases,
    );
    for &k in wrong.iter().take(10) {
        let n = t.n as usize;
        eprintln!(
            "  pixel ({}, {}): {} (truth {})",
            k / n,
            k % n,
            got[k],
            t.counts[k]
        );
    }
    assert!(agree >= 0.999, "{name}: only {:.3} % agree", agree * 100.0);
    assert!(
        largest <= 2,
        "{name}: a group of {largest} wrong pixels is a glitch"
    );
}

#[test]
fn zoom_1e14_agrees_with_brute_force() {
    check("e14", BLA_EPSILON, false);
}

#[test]
fn zoom_1e14_without_bla_agrees_with_brute_force() {
    check("e14", 0.0, false);
}

#[test]
fn zoom_5e113_agrees_with_brute_force() {
    check("5e113", BLA_EPSILON, false);
}

#[test]
fn zoom_5e113_without_bla_agrees_with_brute_force() {
    check("5e113", 0.0, false);
}

#[test]
fn zoom_1e1000_agrees_with_brute_force() {
    check("e1000", BLA_EPSILON, true);
}

/// The in-tree brute force (fixed point) agrees with the independent MPFR
/// truth, at its own P and 2P, on a sample of pixels.
#[test]
fn the_fixed_point_brute_force_agrees_with_mpfr() {
    let t = truth("e14");
    let view = DeepView::parse(&t.re, &t.im, &t.zoom).unwrap();
    let bits = view.precision_bits(t.n);
    for k in (0..t.counts.len()).step_by(97) {
        let (i, j) = (k as u64 / t.n, k as u64 % t.n);
        let low = deep::brute::escape_count(&view, t.n, i, j, t.max_iter, bits);
        let high = deep::brute::escape_count(&view, t.n, i, j, t.max_iter, 2 * bits);
        assert_eq!((low, high), (t.counts[k], t.counts[k]), "pixel ({i}, {j})");
    }
}
