//! The loongarch64 backend of the probe engine (see `probe-hal`'s `Arch`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
