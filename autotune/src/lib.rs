//! Autotuning of kernel configurations (not yet implemented: see the autotune issue).
