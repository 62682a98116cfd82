// The scan that laser's JSONL parser and batch-file writer spend their time in (see
// Sources/LaserRuntime/Input/JSONLineParser.swift, `JSONScan`): the next byte a JSON string cannot hold
// as is. In C for SSE2's byte compares and movemask, which Swift's SIMD types do not expose; static
// inline, so Swift inlines it. Other CPUs take the portable loop.
#ifndef LASER_JSON_SCAN_H
#define LASER_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// The first index in [from, end) holding '"', '\\' or a byte below 0x20, or `end`. Sets *non_ascii
/// to non-zero if a byte >= 0x80 came before that index.
static inline size_t laser_json_find_special(const uint8_t *p, size_t from, size_t end, uint32_t *non_ascii) {
    size_t k = from;
    uint32_t high = 0;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), control = _mm_set1_epi8(0x1F);
    while (k + 16 <= end) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
        // Unsigned v <= 0x1F exactly when min(v, 0x1F) == v.
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
        uint32_t mask = (uint32_t)_mm_movemask_epi8(hit);
        uint32_t top = (uint32_t)_mm_movemask_epi8(v);
        if (mask) {
            uint32_t index = (uint32_t)__builtin_ctz(mask);
            *non_ascii |= high | (top & ((1u << index) - 1u));
            return k + index;
        }
        high |= top;
        k += 16;
    }
#endif
    for (; k < end; k++) {
        uint8_t c = p[k];
        if (c == '"' || c == '\\' || c < 0x20) break;
        high |= c & 0x80u;
    }
    *non_ascii |= high;
    return k;
}

#endif
