//! Shared pieces of the hal crates' register views: the Linux `pt_regs`
//! view eBPF programs read ([`with_view`], instantiated by each hal as
//! `with_pt_regs`), and the macro behind each hal's `frame_registers!`,
//! which maps a kernel's own trap frame (defined in another crate) onto
//! [`Registers`] without `unsafe`.
//!
//! An out-of-tree backend can use the functions here for its own register
//! layout the same way.

use core::any::Any;
use core::ops::Range;

use crate::Registers;

/// `regs` as the concrete frame type `T`, without a copy, when it is one
/// (through [`Registers::as_any_mut`]); `None` otherwise.
#[inline]
pub fn downcast_mut<T: Any>(regs: &mut dyn Registers) -> Option<&mut T> {
    regs.as_any_mut()?.downcast_mut::<T>()
}

/// Copy every register the [`Registers`] trait exposes from `from` into
/// `into`: `pc`, the flags word, general registers `gprs` (numbered as the
/// ISA encodes them), then `sp` (last, so that on an ISA where the stack
/// pointer is also a general register the frame's `sp()` wins). Fields the
/// trait does not expose keep their value in `into`.
#[inline]
pub fn capture_into<T: Registers + ?Sized>(into: &mut T, from: &dyn Registers, gprs: Range<usize>) {
    into.set_pc(from.pc());
    into.set_flags(from.flags());
    for n in gprs {
        into.set_gpr(n, from.gpr(n));
    }
    into.set_sp(from.sp());
}

/// Write into `to` exactly the registers that differ between `now` and
/// `before` (`pc`, the flags word, general registers `gprs`, `sp`), so
/// that a program that changed one register changes that one only, and a
/// register someone else changed in `to` meanwhile is kept unless the
/// program changed it too.
#[inline]
pub fn write_back_changes<T: Registers + ?Sized>(
    now: &T,
    before: &T,
    to: &mut dyn Registers,
    gprs: Range<usize>,
) {
    for n in gprs {
        if now.gpr(n) != before.gpr(n) {
            to.set_gpr(n, now.gpr(n));
        }
    }
    if now.sp() != before.sp() {
        to.set_sp(now.sp());
    }
    if now.pc() != before.pc() {
        to.set_pc(now.pc());
    }
    if now.flags() != before.flags() {
        to.set_flags(now.flags());
    }
}

/// Run `f` on `regs` seen as the frame type `T`: zero-copy when `regs` is
/// a `T` ([`downcast_mut`]); otherwise on a `T` built by `blank` and
/// [`capture_into`], after which what `f` changed is written back
/// ([`write_back_changes`]).
#[inline]
pub fn with_view<T: Registers + Clone + Any, R>(
    regs: &mut dyn Registers,
    blank: impl FnOnce() -> T,
    gprs: Range<usize>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    if let Some(view) = downcast_mut::<T>(regs) {
        return f(view);
    }
    let mut view = blank();
    capture_into(&mut view, regs, gprs.clone());
    let before = view.clone();
    let result = f(&mut view);
    write_back_changes(&view, &before, regs, gprs);
    result
}

/// Declares a hal's `pt_regs` view functions for its `PtRegs` type (an
/// implementation detail of the hal crates; each documents the result):
/// `PtRegs::capture`, `PtRegs::write_back`, `pt_regs_mut` and
/// `with_pt_regs`.
#[doc(hidden)]
#[macro_export]
macro_rules! __pt_regs_view {
    (
        isa: $isa:literal,
        type: $ty:ident,
        blank: $blank:expr,
        gprs: $gprs:expr,
        size: $size:literal,
        offsets: { $($field:ident: $offset:literal),+ $(,)? } $(,)?
    ) => {
        // The layout is ABI: every field at Linux's offset.
        #[cfg(target_pointer_width = "64")]
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $(assert!(core::mem::offset_of!($ty, $field) == $offset);)+
            // Every field is listed (a struct pattern without `..`).
            #[allow(dead_code)]
            fn every_field_has_an_offset(regs: &$ty) {
                let $ty { $($field: _),+ } = regs;
            }
        };

        impl $ty {
            #[doc = concat!(
                "A `", $isa, "` Linux `pt_regs` holding every register the [`Registers`](",
                "probe_hal::Registers) trait exposes on `regs` (pc, sp, flags, general ",
                "registers); the fields it does not expose are as in `", stringify!($blank),
                "`. The conversion path of [`with_pt_regs`]."
            )]
            pub fn capture(regs: &dyn $crate::Registers) -> Self {
                let mut view = $blank;
                $crate::view::capture_into(&mut view, regs, $gprs);
                view
            }

            /// Write into `regs` the registers that differ between `self`
            /// and `before` (a copy of `self` taken right after
            /// [`capture`](Self::capture)), and only those: a program that
            /// changed one register changes exactly that one in the
            /// kernel's frame, and a register changed there meanwhile by
            /// someone else is kept unless the program changed it too.
            /// Fields the [`Registers`](probe_hal::Registers) trait does not
            /// expose are not written back.
            pub fn write_back(&self, before: &Self, regs: &mut dyn $crate::Registers) {
                $crate::view::write_back_changes(self, before, regs, $gprs);
            }
        }

        #[doc = concat!(
            "`regs` as the `", $isa, "` Linux `pt_regs` it is, without a copy: `Some` when the ",
            "frame is a [`", stringify!($ty), "`] (the return trampoline's frame, or a kernel that ",
            "uses it as its trap frame), `None` for any other frame type."
        )]
        #[inline]
        pub fn pt_regs_mut(regs: &mut dyn $crate::Registers) -> Option<&mut $ty> {
            $crate::view::downcast_mut::<$ty>(regs)
        }

        #[doc = concat!(
            "Run `f` on `regs` seen as a `", $isa, "` Linux `pt_regs`, the context an eBPF ",
            "program reads: zero-copy when [`pt_regs_mut`] succeeds, else on a [`",
            stringify!($ty), "::capture`] of `regs`, after which what `f` changed is written ",
            "back ([`", stringify!($ty), "::write_back`]). What an eBPF dispatcher calls with ",
            "the program's context; the layout is ABI (see [the table](self))."
        )]
        #[inline]
        pub fn with_pt_regs<T>(
            regs: &mut dyn $crate::Registers,
            f: impl FnOnce(&mut $ty) -> T,
        ) -> T {
            $crate::view::with_view(regs, || $blank, $gprs, f)
        }

        /// The zero-copy path hands out the frame itself, and a change made
        /// through the view is the frame's.
        #[cfg(test)]
        #[test]
        fn pt_regs_view_is_zero_copy() {
            let mut regs = $blank;
            let at = &regs as *const $ty;
            assert_eq!(pt_regs_mut(&mut regs).map(|p| p as *const $ty), Some(at));
            let seen = with_pt_regs(&mut regs, |v| {
                $crate::Registers::set_return_value(v, 5);
                v as *const $ty
            });
            assert_eq!((seen, $crate::Registers::return_value(&regs)), (at, 5));
        }
    };
}

/// The macro behind each hal's `frame_registers!` (an implementation
/// detail: use the hal's macro, which supplies the `isa` part).
///
/// `isa { abi: <path of the CallAbi static>, gprs: <first>..<end>, sp:
/// gpr <n> | field }`: general registers `first..end` are mapped (others
/// read 0 and ignore writes); the stack pointer is general register `n`,
/// or a field the caller names (`sp: path`).
#[doc(hidden)]
#[macro_export]
macro_rules! __frame_registers {
    // A wrapper that borrows the frame: no unsafe at all.
    (
        isa { $($isa:tt)* }
        $(#[$meta:meta])*
        $vis:vis struct $name:ident<$lt:lifetime>($fvis:vis & $lt2:lifetime mut $frame:ty) {
            $($body:tt)*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name<$lt>($fvis &$lt2 mut $frame);

        $crate::__frame_registers!(@impl [impl<$lt> $crate::Registers for $name<$lt>] { $($isa)* } { $($body)* });
    };
    // A wrapper that is the frame (`#[repr(transparent)]`), reached from a
    // `&mut Frame` by `from_mut`.
    (
        isa { $($isa:tt)* }
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($fvis:vis $frame:ty) {
            $($body:tt)*
        }
    ) => {
        $(#[$meta])*
        #[repr(transparent)]
        $vis struct $name($fvis $frame);

        impl $name {
            /// The frame seen as this wrapper, without a copy.
            #[inline(always)]
            $vis fn from_mut(frame: &mut $frame) -> &mut Self {
                // SAFETY: `Self` is `#[repr(transparent)]` over the frame
                // type, so both have the same layout and validity; the
                // result reborrows `frame` exclusively for its lifetime.
                unsafe { &mut *(frame as *mut $frame as *mut Self) }
            }
        }

        $crate::__frame_registers!(@impl [impl $crate::Registers for $name] { $($isa)* } { $($body)* });
    };

    (@impl [$($head:tt)*]
        { abi: $abi:path, gprs: $first:literal .. $end:literal, sp: $($sprule:tt)+ }
        {
            pc: $($pc:ident).+,
            $(sp: $($sp:ident).+,)?
            $(flags: $($flags:ident).+,)?
            gprs: $($gprs:tt)+
        }
    ) => {
        #[allow(clippy::unnecessary_cast, unused_assignments)]
        $($head)* {
            #[inline]
            fn pc(&self) -> usize {
                self.0.$($pc).+ as usize
            }
            #[inline]
            fn set_pc(&mut self, pc: usize) {
                self.0.$($pc).+ = pc as _;
            }
            #[inline]
            fn sp(&self) -> usize {
                $crate::__frame_registers!(@sp_get self [$($sprule)+] [$($($sp).+)?])
            }
            #[inline]
            fn set_sp(&mut self, sp: usize) {
                $crate::__frame_registers!(@sp_set self sp [$($sprule)+] [$($($sp).+)?])
            }
            #[inline]
            fn gpr(&self, n: usize) -> usize {
                $crate::__frame_registers!(@gpr_get self n $first $end [$($gprs)+])
            }
            #[inline]
            fn set_gpr(&mut self, n: usize, value: usize) {
                $crate::__frame_registers!(@gpr_set self n value $first $end [$($gprs)+])
            }
            #[inline]
            fn call_abi(&self) -> &'static $crate::CallAbi {
                &$abi
            }
            $(
                #[inline]
                fn flags(&self) -> usize {
                    self.0.$($flags).+ as usize
                }
                #[inline]
                fn set_flags(&mut self, flags: usize) {
                    self.0.$($flags).+ = flags as _;
                }
            )?
        }
    };

    // The stack pointer: a general register, or a named field.
    (@sp_get $s:ident [gpr $n:expr] []) => { $s.gpr($n) };
    (@sp_set $s:ident $v:ident [gpr $n:expr] []) => { $s.set_gpr($n, $v) };
    (@sp_get $s:ident [field] [$($sp:ident).+]) => { $s.0.$($sp).+ as usize };
    (@sp_set $s:ident $v:ident [field] [$($sp:ident).+]) => { $s.0.$($sp).+ = $v as _ };
    (@sp_get $s:ident [gpr $n:expr] [$($sp:tt)+]) => {
        compile_error!("the stack pointer is a general register on this ISA: map it in `gprs`, not as `sp:`")
    };
    (@sp_set $s:ident $v:ident [gpr $n:expr] [$($sp:tt)+]) => { () };
    (@sp_get $s:ident [field] []) => {
        compile_error!("the stack pointer is not a general register on this ISA: map it with `sp: <field>,` after `pc`")
    };
    (@sp_set $s:ident $v:ident [field] []) => { () };

    // General registers as one array indexed by register number.
    (@gpr_get $s:ident $n:ident $first:literal $end:literal [$($arr:ident).+ $(,)?]) => {
        if ($first..$end).contains(&$n) { $s.0.$($arr).+[$n] as usize } else { 0 }
    };
    (@gpr_set $s:ident $n:ident $v:ident $first:literal $end:literal [$($arr:ident).+ $(,)?]) => {
        if ($first..$end).contains(&$n) { $s.0.$($arr).+[$n] = $v as _; }
    };
    // General registers as named fields, in register-number order from
    // `first`.
    (@gpr_get $s:ident $n:ident $first:literal $end:literal [[$($($g:ident).+),+ $(,)?] $(,)?]) => {{
        const _: () = assert!(
            [$(stringify!($($g).+)),+].len() == $end - $first,
            "`gprs: [...]` must name every general register of the ISA, in encoding order",
        );
        let mut _i: usize = $first;
        $(
            if $n == _i {
                return $s.0.$($g).+ as usize;
            }
            _i += 1;
        )+
        0
    }};
    (@gpr_set $s:ident $n:ident $v:ident $first:literal $end:literal [[$($($g:ident).+),+ $(,)?] $(,)?]) => {{
        let mut _i: usize = $first;
        $(
            if $n == _i {
                $s.0.$($g).+ = $v as _;
                return;
            }
            _i += 1;
        )+
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallAbi;

    static ABI: CallAbi = CallAbi {
        args: &[1, 2],
        ret: [1, 2],
    };

    #[derive(Clone, Default, Debug, PartialEq)]
    struct Four {
        r: [usize; 4],
        pc: usize,
        flags: usize,
    }

    impl Registers for Four {
        fn pc(&self) -> usize {
            self.pc
        }
        fn set_pc(&mut self, pc: usize) {
            self.pc = pc
        }
        fn sp(&self) -> usize {
            self.r[3]
        }
        fn set_sp(&mut self, sp: usize) {
            self.r[3] = sp
        }
        fn gpr(&self, n: usize) -> usize {
            self.r.get(n).copied().unwrap_or(0)
        }
        fn set_gpr(&mut self, n: usize, v: usize) {
            if let Some(r) = self.r.get_mut(n) {
                *r = v
            }
        }
        fn call_abi(&self) -> &'static CallAbi {
            &ABI
        }
        fn flags(&self) -> usize {
            self.flags
        }
        fn set_flags(&mut self, f: usize) {
            self.flags = f
        }
        fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
            Some(self)
        }
    }

    /// A frame that is not `Four`, so views of it convert.
    struct Other(Four);

    impl Registers for Other {
        fn pc(&self) -> usize {
            self.0.pc()
        }
        fn set_pc(&mut self, pc: usize) {
            self.0.set_pc(pc)
        }
        fn sp(&self) -> usize {
            self.0.sp()
        }
        fn set_sp(&mut self, sp: usize) {
            self.0.set_sp(sp)
        }
        fn gpr(&self, n: usize) -> usize {
            self.0.gpr(n)
        }
        fn set_gpr(&mut self, n: usize, v: usize) {
            self.0.set_gpr(n, v)
        }
        fn call_abi(&self) -> &'static CallAbi {
            &ABI
        }
        fn flags(&self) -> usize {
            self.0.flags
        }
        fn set_flags(&mut self, f: usize) {
            self.0.flags = f
        }
    }

    #[test]
    fn same_type_is_zero_copy() {
        let mut f = Four::default();
        let addr = &f as *const Four as usize;
        let seen = with_view(&mut f, Four::default, 0..4, |v: &mut Four| {
            v.r[1] = 5;
            v as *const Four as usize
        });
        assert_eq!((seen, f.r[1]), (addr, 5));
    }

    #[test]
    fn other_types_convert_and_write_back_only_changes() {
        let mut o = Other(Four {
            r: [1, 2, 3, 4],
            pc: 10,
            flags: 20,
        });
        let mut before = Four::default();
        capture_into(&mut before, &o, 0..4);
        assert_eq!(before, o.0);
        let mut now = before.clone();
        now.r[2] = 33;
        o.0.r[1] = 22; // someone else, meanwhile
        write_back_changes(&now, &before, &mut o, 0..4);
        assert_eq!(o.0.r, [1, 22, 33, 4]);
        assert_eq!(with_view(&mut o, Four::default, 0..4, |v| v.pc), 10);
    }
}
