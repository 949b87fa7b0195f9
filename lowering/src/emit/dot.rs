//! `dot` on the tensor cores: `mma.sync.aligned.m16n8k16` with `f32` accumulators, after Triton's
//! MMAv2 path, in four steps:
//!
//! 1. **place** — every thread writes its elements of `a` and `b` to shared memory. Rows of `a` and
//!    columns of `b` are permuted on the way, so that each warp's 16-row and 8-column tiles lie
//!    contiguous: the accumulator's layout ([`BlockedLayout::for_dot`]) decides which rows and
//!    columns a thread's fragments stand for, and the permutation follows from it;
//! 2. **barrier**;
//! 3. **fragments** — `ldmatrix` reads the operand fragments (`.trans` for a `b` stored `k`-major);
//! 4. **mma** — one `mma.sync` per 16 × 8 tile and 16-wide step of `k`, on this thread's
//!    accumulator registers, which are the elements it owns of the result.
//!
//! Rows of the shared buffers are padded by 8 elements (16 bytes), which keeps `ldmatrix`'s eight
//! row reads of a phase on distinct banks. `trans` feeding a dot costs nothing: it only changes
//! which coordinate of the source is the row when placing it.

use tritonite_lang::ir::ValueId;
use tritonite_lang::DType;

use super::{mlir_type, Emitter};
use crate::error::LowerError;
use crate::layout::{BlockedLayout, WARP_SIZE};

/// Padding of each shared-memory row, in elements (16 bytes of a 16-bit dtype).
const PAD: usize = 8;

/// An operand of a dot as it sits in registers: the block that holds it and whether that block is
/// its transpose.
#[derive(Clone, Copy)]
struct Operand {
    src: ValueId,
    transposed: bool,
}

/// How the accumulator's elements map to mma tiles (all from its layout).
#[derive(Clone, Copy)]
struct Tiles {
    /// Warps along rows and columns.
    warps: [usize; 2],
    /// 16-row tiles per warp.
    m_tiles: usize,
    /// 8-column tiles per warp.
    n_tiles: usize,
    /// Threads owning distinct rows / columns (`8 · warps[0]`, `4 · warps[1]`).
    used: [usize; 2],
    /// Contiguous columns per thread.
    col_run: usize,
}

impl Emitter<'_> {
    /// `acc + a · b` for this thread's elements of the result (see the module docs).
    pub(crate) fn dot(&mut self, a: ValueId, b: ValueId, acc: ValueId, r: ValueId) -> Result<String, LowerError> {
        let dtype = self.ty(a).dtype().expect("dot operands are numbers");
        let [m, k] = [self.ty(a).shape[0], self.ty(a).shape[1]];
        let n = self.ty(b).shape[1];
        let lc = self.layout(r);
        let tiles = self.tiles(&lc, k)?;
        let (a, b) = (self.operand(a), self.operand(b));
        let et = mlir_type(dtype);
        let kind = match dtype {
            DType::BF16 => "bf16",
            _ => "f16",
        };

        // 1–2. Place the operands. `a` is kept row-major ([m][k]); `b` keeps the dimension that is
        // contiguous in its registers contiguous in shared memory: [n][k] when it arrives
        // transposed, [k][n] otherwise (read back with ldmatrix.trans).
        let a_stride = k + PAD;
        let b_k_major = !b.transposed;
        let b_stride = if b_k_major { n + PAD } else { k + PAD };
        let a_buf = self.shared_ptr(dtype, m * a_stride);
        let b_buf = self.shared_ptr(dtype, if b_k_major { k * b_stride } else { n * b_stride });
        self.line("gpu.barrier");
        self.place(a, Side::A { stride: a_stride }, &a_buf, et, &tiles);
        self.place(b, Side::B { stride: b_stride, k_major: b_k_major }, &b_buf, et, &tiles);
        self.line("gpu.barrier");

        // 3–4. Fragments and mma, unrolled over k-steps, then tiles.
        let lane_addr = self.lane_addresses(&tiles, (&a_buf, a_stride), (&b_buf, b_stride), b_k_major);
        let accv = self.num(acc);
        let count = lc.elems_per_thread();
        let mut c: Vec<String> = (0..count)
            .map(|i| self.assign(&format!("vector.extract {accv}[{i}] : f32 from vector<{count}xf32>")))
            .collect();
        for kk in 0..k / 16 {
            let a_frags: Vec<Vec<String>> = (0..tiles.m_tiles)
                .map(|i| self.ldmatrix(&lane_addr.0, (i * 16 * a_stride + kk * 16) * 2, 4, false))
                .collect();
            let mut b_frags: Vec<Vec<String>> = vec![];
            for j in (0..tiles.n_tiles).step_by(2) {
                let offset = if b_k_major { kk * 16 * b_stride + j * 8 } else { j * 8 * b_stride + kk * 16 };
                let count = if j + 1 < tiles.n_tiles { 4 } else { 2 };
                let regs = self.ldmatrix(&lane_addr.1, offset * 2, count, b_k_major);
                b_frags.extend(regs.chunks(2).map(|p| p.to_vec()));
            }
            for (i, af) in a_frags.iter().enumerate() {
                for (j, bf) in b_frags.iter().enumerate() {
                    let at = [
                        lc.flat(2 * i, 2 * j),
                        lc.flat(2 * i, 2 * j + 1),
                        lc.flat(2 * i + 1, 2 * j),
                        lc.flat(2 * i + 1, 2 * j + 1),
                    ];
                    let cs: Vec<String> = at.iter().map(|&x| c[x].clone()).collect();
                    let out = self.mma(kind, af, bf, &cs);
                    for (x, v) in at.into_iter().zip(out) {
                        c[x] = v;
                    }
                }
            }
        }
        Ok(self.assign(&format!("vector.from_elements {} : vector<{count}xf32>", c.join(", "))))
    }

    /// The source of a dot operand, looking through `trans`.
    fn operand(&self, v: ValueId) -> Operand {
        match self.trans_of.get(&v) {
            Some(&src) => Operand { src, transposed: true },
            None => Operand { src: v, transposed: false },
        }
    }

    /// The mma tiling of accumulator layout `l` (which `for_dot` made), checked.
    fn tiles(&self, l: &BlockedLayout, k: usize) -> Result<Tiles, LowerError> {
        let ok = l.threads_per_warp == [8, 4]
            && l.size_per_thread[0] == 1
            && !l.has_replicas(0)
            && !l.has_replicas(1)
            && l.elems(0).is_multiple_of(2)
            && l.elems(1).is_multiple_of(2)
            && k.is_multiple_of(16);
        if !ok {
            return Err(LowerError::Unsupported {
                kernel: self.k.name.clone(),
                what: format!(
                    "a dot with K = {k} and result layout {l:?} (K must be a multiple of 16; one dot shape per kernel)"
                ),
            });
        }
        Ok(Tiles {
            warps: l.warps_per_cta,
            m_tiles: l.elems(0) / 2,
            n_tiles: l.elems(1) / 2,
            used: [l.used(0), l.used(1)],
            col_run: l.size_per_thread[1],
        })
    }

    fn bin(&mut self, op: &str, a: &str, c: usize) -> String {
        let c = self.const_i32(c as i64);
        self.assign(&format!("arith.{op} {a}, {c} : i32"))
    }

    fn add(&mut self, a: &str, b: &str) -> String {
        self.assign(&format!("arith.addi {a}, {b} : i32"))
    }

    /// `row · stride + col`.
    fn index2(&mut self, row: &str, stride: usize, col: &str) -> String {
        let r = self.bin("muli", row, stride);
        self.add(&r, col)
    }

    /// The position of result row `m` in the row-permuted `a` buffer: warp `w0`'s tile `i` holds,
    /// at rows `h · 8 + g`, the row of its element `2i + h` in lane row `g`.
    fn perm_row(&mut self, t: &Tiles, m: &str) -> String {
        let e0 = self.bin("divui", m, t.used[0]);
        let u0 = self.bin("remui", m, t.used[0]);
        let w0 = self.bin("divui", &u0, 8);
        let g = self.bin("remui", &u0, 8);
        let tile = self.bin("muli", &w0, t.m_tiles);
        let i = self.bin("divui", &e0, 2);
        let tile = self.add(&tile, &i);
        let h = self.bin("remui", &e0, 2);
        let h = self.bin("muli", &h, 8);
        let base = self.bin("muli", &tile, 16);
        let base = self.add(&base, &h);
        self.add(&base, &g)
    }

    /// The position of result column `n` in the column-permuted `b` buffer: warp `w1`'s tile `j`
    /// holds, at columns `2q + b`, the column of its element `2j + b` in lane column `q`.
    fn perm_col(&mut self, t: &Tiles, n: &str) -> String {
        let run = t.col_run;
        let hi = self.bin("divui", n, run * t.used[1]);
        let hi = self.bin("muli", &hi, run);
        let lo = self.bin("remui", n, run);
        let e1 = self.add(&hi, &lo);
        let u1 = self.bin("divui", n, run);
        let u1 = self.bin("remui", &u1, t.used[1]);
        let w1 = self.bin("divui", &u1, 4);
        let q = self.bin("remui", &u1, 4);
        let tile = self.bin("muli", &w1, t.n_tiles);
        let j = self.bin("divui", &e1, 2);
        let tile = self.add(&tile, &j);
        let base = self.bin("muli", &tile, 8);
        let q2 = self.bin("muli", &q, 2);
        let base = self.add(&base, &q2);
        let bit = self.bin("remui", &e1, 2);
        self.add(&base, &bit)
    }

    /// Writes this thread's elements of operand `op` to `buf` at their permuted places (see
    /// [`Side`]). Runs of elements that stay contiguous there go as one vector store.
    fn place(&mut self, op: Operand, side: Side, buf: &str, et: &str, t: &Tiles) {
        let l = self.layout(op.src);
        let v = self.num(op.src);
        let n = l.elems_per_thread();
        let spt = l.size_per_thread;
        // A run along the source's columns stays contiguous when those columns are the buffer's
        // inner dimension (k), and in pairs when they are b's permuted n.
        let run = match (side, op.transposed) {
            (Side::A { .. }, false) | (Side::B { k_major: false, .. }, true) => spt[1],
            (Side::B { k_major: true, .. }, false) => spt[1].min(2),
            _ => 1,
        };
        let owner = self.is_owner(&l);
        let coords = [self.owner_coord(&l, 0), self.owner_coord(&l, 1)];
        let bases = [self.bin("muli", &coords[0], spt[0]), self.bin("muli", &coords[1], spt[1])];
        if let Some(p) = &owner {
            self.line(&format!("scf.if {p} {{"));
            self.indent += 1;
        }
        for e0 in 0..l.elems(0) {
            for e1 in (0..l.elems(1)).step_by(run) {
                let s0 = self.bin("addi", &bases[0], l.global_index(0, 0, e0));
                let s1 = self.bin("addi", &bases[1], l.global_index(1, 0, e1));
                let (row, col) = if op.transposed { (s1, s0) } else { (s0, s1) };
                let i = match side {
                    Side::A { stride } => {
                        let m = self.perm_row(t, &row);
                        self.index2(&m, stride, &col)
                    }
                    Side::B { stride, k_major: true } => {
                        let c = self.perm_col(t, &col);
                        self.index2(&row, stride, &c)
                    }
                    Side::B { stride, k_major: false } => {
                        let c = self.perm_col(t, &col);
                        self.index2(&c, stride, &row)
                    }
                };
                let addr =
                    self.assign(&format!("llvm.getelementptr {buf}[{i}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, {et}"));
                let part = self.slice(&v, l.flat(e0, e1), run, n, et);
                let ty = if run == 1 { et.to_string() } else { format!("vector<{run}x{et}>") };
                self.line(&format!("llvm.store {part}, {addr} {{alignment = {} : i64}} : {ty}, !llvm.ptr<3>", run * 2));
            }
        }
        if owner.is_some() {
            self.indent -= 1;
            self.line("}");
        }
    }

    /// Each lane's `ldmatrix` row address (as a 32-bit shared address) for the first fragment of
    /// its warp in the `a` and `b` buffers. Lane `8 · mi + r` points at row `r` of matrix `mi`.
    fn lane_addresses(&mut self, t: &Tiles, a: (&str, usize), b: (&str, usize), b_k_major: bool) -> (String, String) {
        let tid = self.tid.clone();
        let warp = self.bin("divui", &tid, WARP_SIZE);
        let lane = self.bin("remui", &tid, WARP_SIZE);
        let w0 = self.bin("divui", &warp, t.warps[1]);
        let w1 = self.bin("remui", &warp, t.warps[1]);
        let mi = self.bin("divui", &lane, 8);
        let r = self.bin("remui", &lane, 8);
        let mi_lo = self.bin("remui", &mi, 2);
        let mi_lo8 = self.bin("muli", &mi_lo, 8);
        let mi_hi = self.bin("divui", &mi, 2);
        let mi_hi8 = self.bin("muli", &mi_hi, 8);
        let lo_row = self.add(&mi_lo8, &r);
        // a: rows w0·16·m_tiles + (mi % 2)·8 + r, columns (mi / 2)·8.
        let a_row = self.bin("muli", &w0, 16 * t.m_tiles);
        let a_row = self.add(&a_row, &lo_row);
        let a_idx = self.index2(&a_row, a.1, &mi_hi8);
        // b's first tile of this warp: w1·n_tiles, the next tile for mi / 2 = 1.
        let tile = self.bin("muli", &w1, t.n_tiles);
        let tile = self.add(&tile, &mi_hi);
        let tile8 = self.bin("muli", &tile, 8);
        let b_idx = if b_k_major {
            self.index2(&lo_row, b.1, &tile8)
        } else {
            let row = self.add(&tile8, &r);
            self.index2(&row, b.1, &mi_lo8)
        };
        let address = |e: &mut Self, buf: &str, i: &str| {
            let p = e.assign(&format!("llvm.getelementptr {buf}[{i}] : (!llvm.ptr<3>, i32) -> !llvm.ptr<3>, i16"));
            e.assign(&format!("llvm.ptrtoint {p} : !llvm.ptr<3> to i32"))
        };
        (address(self, a.0, &a_idx), address(self, b.0, &b_idx))
    }

    /// `ldmatrix` of `count` 8 × 8 matrices from lane address `addr + offset` (bytes).
    fn ldmatrix(&mut self, addr: &str, offset: usize, count: usize, trans: bool) -> Vec<String> {
        let at = if offset == 0 { addr.to_string() } else { self.bin("addi", addr, offset) };
        let outs: Vec<String> = (0..count).map(|i| format!("${i}")).collect();
        let trans = if trans { ".trans" } else { "" };
        let asm = format!("ldmatrix.sync.aligned.m8n8.x{count}{trans}.shared.b16 {{{}}}, [${count}];", outs.join(","));
        let constraints = format!("{}r", "=r,".repeat(count));
        let st = format!("!llvm.struct<({})>", vec!["i32"; count].join(", "));
        // Side effects keep it after the barrier that orders it behind the stores.
        let s = self.assign(&format!(
            "llvm.inline_asm has_side_effects asm_dialect = att \"{asm}\", \"{constraints}\" {at} : (i32) -> {st}"
        ));
        (0..count).map(|i| self.assign(&format!("llvm.extractvalue {s}[{i}] : {st}"))).collect()
    }

    /// One `mma.sync.m16n8k16` of `kind` (`bf16` or `f16`): `c + a · b` for one tile.
    fn mma(&mut self, kind: &str, a: &[String], b: &[String], c: &[String]) -> Vec<String> {
        let asm = format!(
            "mma.sync.aligned.m16n8k16.row.col.f32.{kind}.{kind}.f32 {{$0,$1,$2,$3}}, {{$4,$5,$6,$7}}, {{$8,$9}}, {{$10,$11,$12,$13}};"
        );
        let args: Vec<&str> = a.iter().chain(b).chain(c).map(String::as_str).collect();
        let st = "!llvm.struct<(f32, f32, f32, f32)>";
        let s = self.assign(&format!(
            "llvm.inline_asm asm_dialect = att \"{asm}\", \"=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f\" {} : (i32, i32, i32, i32, i32, i32, f32, f32, f32, f32) -> {st}",
            args.join(", ")
        ));
        (0..4).map(|i| self.assign(&format!("llvm.extractvalue {s}[{i}] : {st}"))).collect()
    }
}

/// Which operand a buffer holds, and its row stride (elements).
#[derive(Clone, Copy)]
enum Side {
    /// `a`, rows permuted: `[m][k]`.
    A { stride: usize },
    /// `b`, columns permuted: `[k][n]` when `k_major`, else `[n][k]`.
    B { stride: usize, k_major: bool },
}
