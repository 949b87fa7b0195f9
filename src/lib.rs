//! tritonite
