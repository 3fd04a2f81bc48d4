//! Runtime SIMD dispatch for element-wise loops. The wheel targets baseline x86-64, so loops written as plain
//! iterator code are compiled twice: once as is, once with AVX2+FMA enabled, picked at run time. Rust never
//! fuses a multiply and an add on its own, so both versions give bit-identical results.

/// Define `pub fn $name(args)` whose body is compiled for baseline x86-64 and for AVX2, dispatched at run time.
#[macro_export]
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::kernels::simd::has_avx2() {
                    // SAFETY: the CPU reports AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// Cached CPU check (the std macro caches too; this keeps call sites short).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The SIMD level this process uses, for `kerust.show_config()`.
pub fn level() -> &'static str {
    if has_avx2() {
        "avx2+fma"
    } else {
        "baseline"
    }
}
