//! Lowering of the block IR through MLIR to PTX.
