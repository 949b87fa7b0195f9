//! The kernel the cluster tests share (interpreter and GPU): rows split over a cluster.

use tritonite::lang::{build_kernel, DType, Kernel};

/// Rows of `n` columns split over clusters of `size` programs, `rows` rows a program, `block`
/// columns each: every program writes its share of `y = x / Σ x` and of `z = x − max(x)` (f32,
/// sum and maximum over the whole row, combined across the cluster), and rank 0 writes each
/// row's sum to `sums`. Arguments: `x, y, z, sums, m: i32, n: i32`; grid `[size · ceil(m /
/// rows), 1, 1]`.
pub fn split_rows(size: u32, rows: i64, block: i64, dtype: DType) -> Kernel {
    build_kernel(&format!("split_rows_{size}_{rows}_{block}_{}", dtype.name()), |k| {
        k.cluster(size);
        let x = k.ptr_arg("x", dtype);
        let y = k.mut_ptr_arg("y", DType::F32);
        let z = k.mut_ptr_arg("z", DType::F32);
        let sums = k.mut_ptr_arg("sums", DType::F32);
        let m = k.scalar_arg("m", DType::I32);
        let n = k.scalar_arg("n", DType::I32);
        let r = k.cluster_id() * rows + k.arange(0, rows);
        let c = k.cluster_rank() * block + k.arange(0, block);
        let (r2, c2) = (r.expand_dims(1), c.expand_dims(0));
        let mask = r2.lt(m) & c2.lt(n);
        let at = r2 * n + c2;
        let v = k.load_masked(x + at, mask, 0.0).cast(DType::F32);
        let total = v.sum(1).cluster_sum();
        let top = k.where_(mask, v, f32::NEG_INFINITY).max(1).cluster_max();
        k.store_masked(y + at, v / total.expand_dims(1), mask);
        k.store_masked(z + at, v - top.expand_dims(1), mask);
        k.store_masked(sums + r, total, r.lt(m) & k.cluster_rank().equal(0));
    })
    .expect("the split-rows kernel builds")
}
