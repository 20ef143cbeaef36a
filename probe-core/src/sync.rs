//! The atomics of the lock-free parts (probe table, instance pool, probe
//! records), behind one name so loom can check them.
//!
//! Normally `atomic` is `core::sync::atomic`. Under `RUSTFLAGS="--cfg
//! loom"` (the loom tests: `cargo xtask test loom`) it holds wrappers
//! around `loom::sync::atomic` that keep the `const fn new` the engine's
//! constructors need: loom's atomics can only be created at run time, inside
//! a loom model, so each wrapper keeps its initial value and creates its
//! loom atomic on first use. The loom tests build the structures inside the
//! model, at run time (`new_loom`, which also creates every loom atomic
//! before the structure is shared: loom reports a load not ordered after
//! the atomic's creation); the engine's `const` constructors stay
//! unchanged. Only the crate's own test build switches (loom is a
//! dev-dependency): a non-test build under `--cfg loom` keeps `core`'s.

#[cfg(not(all(loom, test)))]
pub(crate) use core::sync::atomic;

/// Loom-checked atomics with `const` constructors (see the module
/// documentation). Test builds only: loom is a dev-dependency.
#[cfg(all(loom, test))]
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::Ordering;

    use std::sync::OnceLock;

    macro_rules! lazy_atomic {
        ($name:ident, $t:ty) => {
            /// A loom atomic created on first use from a `const` initial value.
            pub(crate) struct $name {
                init: $t,
                cell: OnceLock<loom::sync::atomic::$name>,
            }

            #[allow(dead_code)]
            impl $name {
                pub(crate) const fn new(v: $t) -> Self {
                    Self {
                        init: v,
                        cell: OnceLock::new(),
                    }
                }

                /// Create the loom atomic now: in the thread that builds the
                /// structure, before it is shared (loom reports a load that
                /// is not ordered after the atomic's creation).
                pub(crate) fn touch(&self) {
                    self.get();
                }

                fn get(&self) -> &loom::sync::atomic::$name {
                    self.cell
                        .get_or_init(|| loom::sync::atomic::$name::new(self.init))
                }

                pub(crate) fn load(&self, o: Ordering) -> $t {
                    self.get().load(o)
                }

                pub(crate) fn store(&self, v: $t, o: Ordering) {
                    self.get().store(v, o)
                }

                pub(crate) fn swap(&self, v: $t, o: Ordering) -> $t {
                    self.get().swap(v, o)
                }

                pub(crate) fn compare_exchange(
                    &self,
                    cur: $t,
                    new: $t,
                    ok: Ordering,
                    err: Ordering,
                ) -> Result<$t, $t> {
                    self.get().compare_exchange(cur, new, ok, err)
                }

                pub(crate) fn compare_exchange_weak(
                    &self,
                    cur: $t,
                    new: $t,
                    ok: Ordering,
                    err: Ordering,
                ) -> Result<$t, $t> {
                    self.get().compare_exchange_weak(cur, new, ok, err)
                }
            }
        };
    }

    macro_rules! lazy_atomic_int {
        ($name:ident, $t:ty) => {
            lazy_atomic!($name, $t);

            #[allow(dead_code)]
            impl $name {
                pub(crate) fn fetch_add(&self, v: $t, o: Ordering) -> $t {
                    self.get().fetch_add(v, o)
                }

                pub(crate) fn fetch_sub(&self, v: $t, o: Ordering) -> $t {
                    self.get().fetch_sub(v, o)
                }
            }
        };
    }

    lazy_atomic!(AtomicBool, bool);
    lazy_atomic_int!(AtomicU32, u32);
    lazy_atomic_int!(AtomicU64, u64);
}
