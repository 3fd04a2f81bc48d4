//! Runtime SIMD dispatch for element-wise loops. The wheel targets baseline x86-64, so loops written as plain
//! iterator code are compiled three times: as is, with AVX2+FMA, and with AVX-512 (F, BW, CD, DQ, VL: the
//! x86-64-v4 level, which the GEMM's kernels also need), picked at run time. Rust never fuses a multiply and an
//! add on its own nor reorders float sums, so every version gives bit-identical results.

/// Define `pub fn $name(args)` whose body is compiled for baseline x86-64, AVX2 and AVX-512, dispatched at run
/// time.
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
                #[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::kernels::simd::has_avx512() {
                    // SAFETY: the CPU reports every AVX-512 subset enabled above (checked just above).
                    return unsafe { avx512($($arg),*) };
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

/// Whether the CPU has the x86-64-v4 AVX-512 subsets (F, BW, CD, DQ, VL): the element-wise loops' and the
/// GEMM's (the `gemm` crate's `x86-v4` kernels) AVX-512 paths run only then.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512cd")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
            && has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The SIMD level this process uses (GEMM and element-wise loops alike), for `kerust.show_config()`.
pub fn level() -> &'static str {
    if has_avx512() {
        "avx512"
    } else if has_avx2() {
        "avx2+fma"
    } else {
        "baseline"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn level_names_what_the_cpu_has() {
        let level = super::level();
        assert!(["avx512", "avx2+fma", "baseline"].contains(&level));
        if super::has_avx512() {
            assert!(super::has_avx2());
        }
    }
}
