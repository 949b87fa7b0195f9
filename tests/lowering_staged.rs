//! Staged loads lower to `cp.async` copies into dynamic shared memory and reads back from there
//! (checked on the GPU against the interpreter in the GPU suite's `staged` tests); a loop that
//! carries a staged block carries its address and alternates two buffers.

use tritonite::lang::{build_kernel, DType, Kernel};
use tritonite::lowering::{compile, dynamic_shared_bytes, ptxas, CompileOptions};

/// `y = x · 2` over rows of `block` columns, each program striding over the rows with its next
/// row staged a loop ahead.
fn prefetching_copy(dtype: DType, block: i64) -> Kernel {
    build_kernel("staged_copy", |k| {
        let x = k.ptr_arg("x", dtype);
        let y = k.mut_ptr_arg("y", dtype);
        let m = k.scalar_arg("m", DType::I32);
        let cols = k.arange(0, block);
        let first = k.program_id(0);
        let init = k.load_staged(x + first * block + cols, cols.lt(block) & first.lt(m));
        k.for_range(first, m, k.num_programs(0), &[init], |r, cur| {
            let next = r + k.num_programs(0);
            let staged = k.load_staged(x + next * block + cols, cols.lt(block) & next.lt(m));
            k.store(y + r * block + cols, cur[0] * 2.0);
            vec![staged]
        });
    })
    .unwrap()
}

#[test]
fn a_carried_staged_block_lowers_to_async_copies_into_two_buffers() {
    for (dtype, warps) in [(DType::F32, 4), (DType::BF16, 8), (DType::F16, 1)] {
        let k = prefetching_copy(dtype, 2048);
        // Both pointers 16-byte aligned, as the launcher finds them: 16-byte copies.
        let opts =
            CompileOptions { num_warps: warps, divisibility: vec![(0, 16), (1, 16)], ..CompileOptions::default() };
        let compiled = compile(&k, &opts).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        let ptx = &compiled.ptx;
        assert!(ptx.contains("cp.async.cg.shared.global") && ptx.contains("cp.async.wait_group"), "{ptx}");
        // Two buffers of the block: the prologue's and the loop's.
        let bytes = 2 * 2048 * dtype.size_bytes() as u32;
        assert_eq!(compiled.shared_bytes, bytes);
        assert_eq!(dynamic_shared_bytes(&k, &opts).unwrap(), bytes);
        if ptxas::find_ptxas().is_some() {
            ptxas::assemble(ptx, "sm_90").unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        }
        if std::env::var_os("PRINT_PTX").is_some() {
            println!("{ptx}");
        }
    }
}
