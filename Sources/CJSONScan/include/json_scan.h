// The scans that laser's JSONL parser and batch-file writer spend their time in (see
// Sources/LaserRuntime/Input/JSONLineParser.swift, `JSONScan`): in C for SSE2's byte compares and
// movemask, which Swift's SIMD types do not expose; static inline, so Swift inlines them. Other CPUs
// take the portable loops. Every function here is tested against a plain byte-at-a-time model
// (Tests/LaserRuntimeTests/JSONScanTests.swift).
#ifndef LASER_JSON_SCAN_H
#define LASER_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__SSE2__)
/// Bit i set where byte i of v is '"', '\\' or below 0x20.
static inline uint32_t laser_json_special_mask(__m128i v) {
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), control = _mm_set1_epi8(0x1F);
    // Unsigned v <= 0x1F exactly when min(v, 0x1F) == v.
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                               _mm_cmpeq_epi8(_mm_min_epu8(v, control), v));
    return (uint32_t)_mm_movemask_epi8(hit);
}
#endif

/// The first index in [from, end) holding '"', '\\' or a byte below 0x20, or `end`. Sets *non_ascii
/// to non-zero if a byte >= 0x80 came before that index.
static inline size_t laser_json_find_special(const uint8_t *p, size_t from, size_t end, uint32_t *non_ascii) {
    size_t k = from;
    uint32_t high = 0;
#if defined(__SSE2__)
    while (k + 16 <= end) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
        uint32_t mask = laser_json_special_mask(v);
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

/// What `laser_json_string` found wrong; the parser turns each into its message.
enum {
    LASER_JSON_OK = 0,
    LASER_JSON_UNTERMINATED_STRING = 1,
    LASER_JSON_CONTROL_CHARACTER = 2,
    LASER_JSON_UNTERMINATED_ESCAPE = 3,
    LASER_JSON_INVALID_ESCAPE = 4,
    LASER_JSON_BAD_HEX = 5,
    LASER_JSON_UNPAIRED_SURROGATE = 6,
};

typedef struct {
    /// On success the index of the closing quote; on an error the offset the error is reported at.
    size_t at;
    /// Decoded bytes written to `out` (decoding only).
    size_t written;
    /// Non-zero if the raw text held a byte >= 0x80 (then it still needs UTF-8 validation).
    uint32_t non_ascii;
    /// One of the LASER_JSON_ codes.
    int error;
    /// Whether a \u0000 escape decoded to a NUL byte.
    int saw_nul;
    /// Whether some escape is not the one `laser_json_escape` writes for its character (\/, \b, \f,
    /// \u for anything but a control character without a short name, upper-case hex): 0 means the raw
    /// body is exactly what laser would write for the decoded text.
    int non_canonical;
} laser_json_string_result;

static inline int laser_json_hex4(const uint8_t *p, size_t i, size_t end, uint32_t *value, size_t *bad) {
    if (i + 4 > end) { *bad = i; return 0; }
    uint32_t v = 0;
    for (size_t k = i; k < i + 4; k++) {
        uint8_t c = p[k], d;
        if (c >= '0' && c <= '9') d = (uint8_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint8_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint8_t)(c - 'A' + 10);
        else { *bad = k; return 0; }
        v = v << 4 | d;
    }
    *value = v;
    return 1;
}

/// The exact, one-escape-at-a-time form of `laser_json_string`, resumable: from p[k] (not inside an
/// escape), with w bytes already in out and `high` the non-ASCII flag so far.
static inline laser_json_string_result laser_json_string_from(const uint8_t *p, size_t k, size_t end, uint8_t *out, size_t w, uint32_t high) {
    laser_json_string_result r = {0, 0, 0, LASER_JSON_OK, 0, 0};
    for (;;) {
        // Scan (and copy) to the next special byte.
#if defined(__SSE2__)
        for (;;) {
            if (k + 16 > end) {
                for (; k < end; k++) {
                    uint8_t c = p[k];
                    if (c == '"' || c == '\\' || c < 0x20) break;
                    high |= c & 0x80u;
                    if (out) out[w++] = c;
                }
                break;
            }
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + k));
            if (out) _mm_storeu_si128((__m128i *)(void *)(out + w), v);
            uint32_t mask = laser_json_special_mask(v);
            uint32_t top = (uint32_t)_mm_movemask_epi8(v);
            if (mask) {
                uint32_t index = (uint32_t)__builtin_ctz(mask);
                high |= top & ((1u << index) - 1u);
                k += index;
                w += index;
                break;
            }
            high |= top;
            k += 16;
            w += 16;
        }
#else
        for (; k < end; k++) {
            uint8_t c = p[k];
            if (c == '"' || c == '\\' || c < 0x20) break;
            high |= c & 0x80u;
            if (out) out[w++] = c;
        }
#endif
        r.non_ascii = high;
        r.written = w;
        if (k >= end) { r.at = end; r.error = LASER_JSON_UNTERMINATED_STRING; return r; }
        uint8_t c = p[k];
        if (c == '"') { r.at = k; return r; }
        if (c < 0x20) { r.at = k; r.error = LASER_JSON_CONTROL_CHARACTER; return r; }
        // A backslash.
        if (k + 1 >= end) { r.at = k; r.error = LASER_JSON_UNTERMINATED_ESCAPE; return r; }
        uint8_t e = p[k + 1], byte;
        switch (e) {
        case '"': case '\\': byte = e; break;
        case '/': byte = e; r.non_canonical = 1; break;
        case 'n': byte = 0x0A; break;
        case 't': byte = 0x09; break;
        case 'r': byte = 0x0D; break;
        case 'b': byte = 0x08; r.non_canonical = 1; break;
        case 'f': byte = 0x0C; r.non_canonical = 1; break;
        case 'u': {
            size_t i = k + 2, bad = 0;
            uint32_t scalar = 0, low = 0;
            if (!laser_json_hex4(p, i, end, &scalar, &bad)) { r.at = bad; r.error = LASER_JSON_BAD_HEX; return r; }
            i += 4;
            if (scalar >= 0xD800 && scalar < 0xDC00) {
                if (!(i + 1 < end && p[i] == '\\' && p[i + 1] == 'u')) { r.at = i; r.error = LASER_JSON_UNPAIRED_SURROGATE; return r; }
                i += 2;
                if (!laser_json_hex4(p, i, end, &low, &bad)) { r.at = bad; r.error = LASER_JSON_BAD_HEX; return r; }
                i += 4;
                if (!(low >= 0xDC00 && low < 0xE000)) { r.at = i; r.error = LASER_JSON_UNPAIRED_SURROGATE; return r; }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00);
            } else if (scalar >= 0xDC00 && scalar < 0xE000) {
                r.at = i; r.error = LASER_JSON_UNPAIRED_SURROGATE; return r;
            }
            if (scalar == 0) r.saw_nul = 1;
            // laser writes \u00xx (lower-case hex) only for control characters without a short name.
            if (scalar >= 0x20 || scalar == 0x09 || scalar == 0x0A || scalar == 0x0D ||
                (p[k + 4] >= 'A' && p[k + 4] <= 'F') || (p[k + 5] >= 'A' && p[k + 5] <= 'F')) r.non_canonical = 1;
            if (out) {
                if (scalar < 0x80) {
                    out[w++] = (uint8_t)scalar;
                } else if (scalar < 0x800) {
                    out[w++] = (uint8_t)(0xC0 | scalar >> 6);
                    out[w++] = (uint8_t)(0x80 | (scalar & 0x3F));
                } else if (scalar < 0x10000) {
                    out[w++] = (uint8_t)(0xE0 | scalar >> 12);
                    out[w++] = (uint8_t)(0x80 | ((scalar >> 6) & 0x3F));
                    out[w++] = (uint8_t)(0x80 | (scalar & 0x3F));
                } else {
                    out[w++] = (uint8_t)(0xF0 | scalar >> 18);
                    out[w++] = (uint8_t)(0x80 | ((scalar >> 12) & 0x3F));
                    out[w++] = (uint8_t)(0x80 | ((scalar >> 6) & 0x3F));
                    out[w++] = (uint8_t)(0x80 | (scalar & 0x3F));
                }
            }
            k = i;
            continue;
        }
        default: r.at = k; r.error = LASER_JSON_INVALID_ESCAPE; return r;
        }
        if (out) out[w++] = byte;
        k += 2;
    }
}

/// `laser_json_string` without the 64-byte fast path: the reference it is tested against.
static inline laser_json_string_result laser_json_string_exact(const uint8_t *p, size_t from, size_t end, uint8_t *out) {
    return laser_json_string_from(p, from, end, out, 0, 0);
}

/// For each byte, the byte a simple escape (backslash + this byte) stands for; 0 for an invalid escape
/// and for 'u' (both take the exact path).
static const uint8_t laser_json_simple_escape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = 0x08, ['f'] = 0x0C, ['n'] = 0x0A, ['r'] = 0x0D, ['t'] = 0x09,
};

/// 1 for the simple escapes `laser_json_escape` writes (\" \\ \n \r \t).
static const uint8_t laser_json_canonical_escape[256] = {
    ['"'] = 1, ['\\'] = 1, ['n'] = 1, ['r'] = 1, ['t'] = 1,
};

#if defined(__SSE2__)
static inline uint64_t laser_json_mask64(__m128i a, __m128i b, __m128i c, __m128i d) {
    return (uint64_t)(uint32_t)_mm_movemask_epi8(a) | (uint64_t)(uint32_t)_mm_movemask_epi8(b) << 16 |
           (uint64_t)(uint32_t)_mm_movemask_epi8(c) << 32 | (uint64_t)(uint32_t)_mm_movemask_epi8(d) << 48;
}

/// 64 bytes of a string body, as the block paths below read them.
typedef struct { __m128i a, b, c, d; } laser_json_block;

static inline laser_json_block laser_json_load_block(const uint8_t *p) {
    laser_json_block v = {_mm_loadu_si128((const __m128i *)(const void *)p), _mm_loadu_si128((const __m128i *)(const void *)(p + 16)),
                          _mm_loadu_si128((const __m128i *)(const void *)(p + 32)), _mm_loadu_si128((const __m128i *)(const void *)(p + 48))};
    return v;
}

/// Bit i set where byte i of the block equals `c`.
static inline uint64_t laser_json_eq_mask(laser_json_block v, char c) {
    const __m128i x = _mm_set1_epi8(c);
    return laser_json_mask64(_mm_cmpeq_epi8(v.a, x), _mm_cmpeq_epi8(v.b, x), _mm_cmpeq_epi8(v.c, x), _mm_cmpeq_epi8(v.d, x));
}

/// From the block's backslash mask: the backslashes that escape the next byte (the first of each pair
/// in a run; simdjson's subtraction trick, valid when the block does not start on an escaped byte),
/// and the bytes they escape.
static inline void laser_json_escapes(uint64_t bs, uint64_t *escape, uint64_t *escaped) {
    const uint64_t odd = 0xAAAAAAAAAAAAAAAAULL;
    uint64_t x = ((bs << 1 | odd) - bs) ^ odd;
    *escape = x & bs;
    *escaped = x ^ bs;
}
#endif

/// The body of a JSON string: p[from] is the first byte after the opening quote. Checks every escape
/// and control character (RFC 8259); UTF-8 validity of non-ASCII bytes is left to the caller (see
/// non_ascii). With `out` (room for end - from + 16 bytes) it also decodes the escapes into out, one
/// escape at a time, copying 16 bytes per step while it scans; with out == NULL it only checks, 64
/// bytes per step:
///
/// bit masks of backslashes, quotes, control and non-ASCII bytes; which backslashes escape (odd runs,
/// by simdjson's subtraction trick: no branch per backslash); the closing quote is the first quote not
/// escaped; the byte after each escaping backslash is checked with a table look-up. Anything else (a
/// \u escape, an error) and the last bytes of the line take the exact path, so errors are found and
/// reported exactly as there. (`laser-bench strings` measures both: the block path checks about 1.3x as
/// fast; for decoding, where each escape's work dominates, it measured 0.8x, so decoding stays exact.)
static inline laser_json_string_result laser_json_string(const uint8_t *p, size_t from, size_t end, uint8_t *out) {
#if defined(__SSE2__)
    if (out) return laser_json_string_from(p, from, end, out, 0, 0);
    const __m128i control = _mm_set1_epi8(0x1F);
    size_t k = from;
    uint64_t high = 0;
    int non_canonical = 0;
    while (k + 64 <= end) {
        laser_json_block v = laser_json_load_block(p + k);
        uint64_t bs = laser_json_eq_mask(v, '\\'), qs = laser_json_eq_mask(v, '"');
        uint64_t ctl = laser_json_mask64(_mm_cmpeq_epi8(_mm_min_epu8(v.a, control), v.a), _mm_cmpeq_epi8(_mm_min_epu8(v.b, control), v.b),
                                         _mm_cmpeq_epi8(_mm_min_epu8(v.c, control), v.c), _mm_cmpeq_epi8(_mm_min_epu8(v.d, control), v.d));
        uint64_t top = laser_json_mask64(v.a, v.b, v.c, v.d);
        uint64_t escape, escaped;
        laser_json_escapes(bs, &escape, &escaped);
        uint64_t closing = qs & ~escaped;
        uint64_t before = closing ? (closing & (0 - closing)) - 1 : ~(uint64_t)0;
        if (ctl & before) break;
        high |= top & before;
        uint64_t e = escape & before;
        int exact = 0;
        size_t next = k + 64;
        while (e) {
            size_t i = (size_t)__builtin_ctzll(e);
            e &= e - 1;
            // The escaped byte is k + i + 1 (k + 64 for a backslash at the block's last byte).
            if (k + i + 1 >= end || !laser_json_simple_escape[p[k + i + 1]]) { exact = 1; break; }
            non_canonical |= !laser_json_canonical_escape[p[k + i + 1]];
            if (i == 63) next = k + 65;
        }
        if (exact) break;
        if (closing) {
            laser_json_string_result r = {k + (size_t)__builtin_ctzll(closing), 0, high != 0, LASER_JSON_OK, 0, non_canonical};
            return r;
        }
        k = next;
    }
    if (k + 64 <= end) return laser_json_string_from(p, from, end, NULL, 0, 0);
    laser_json_string_result r = laser_json_string_from(p, k, end, NULL, 0, high != 0);
    r.non_canonical |= non_canonical;
    return r;
#else
    return laser_json_string_from(p, from, end, out, 0, 0);
#endif
}

/// Where a string body starting at p[from] ends: the index of the first '"' not escaped, or `end` if
/// there is none. Checks nothing (for bytes a validating pass already checked): the same 64-byte
/// masks as `laser_json_string`, without its control-character and escape checks.
static inline size_t laser_json_string_end(const uint8_t *p, size_t from, size_t end) {
    size_t k = from;
#if defined(__SSE2__)
    while (k + 64 <= end) {
        laser_json_block v = laser_json_load_block(p + k);
        uint64_t escape, escaped;
        laser_json_escapes(laser_json_eq_mask(v, '\\'), &escape, &escaped);
        uint64_t closing = laser_json_eq_mask(v, '"') & ~escaped;
        if (closing) return k + (size_t)__builtin_ctzll(closing);
        // A backslash in the block's last byte escapes the next block's first byte: step over it.
        k += (escape >> 63) ? 65 : 64;
    }
#endif
    while (k < end) {
        if (p[k] == '\\') { k += 2; continue; }
        if (p[k] == '"') return k;
        k++;
    }
    return end;
}

/// Escapes src[*k..<n] as a JSON string body (no quotes) into out[0..<cap], cap >= 32, until src or
/// out runs out; advances *k and returns the bytes written. Escaped as laser's writers always have:
/// '"', '\\', \n, \r and \t by name, other control characters as \u00xx, everything else (UTF-8
/// included) as is.
static inline size_t laser_json_escape(const uint8_t *src, size_t n, size_t *k_inout, uint8_t *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t k = *k_inout, w = 0;
    // Room for one more 16-byte store or one 6-byte escape.
    while (k < n && w + 16 <= cap) {
#if defined(__SSE2__)
        if (k + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(src + k));
            _mm_storeu_si128((__m128i *)(void *)(out + w), v);
            uint32_t mask = laser_json_special_mask(v);
            if (!mask) { k += 16; w += 16; continue; }
            uint32_t index = (uint32_t)__builtin_ctz(mask);
            k += index;
            w += index;
        } else
#endif
        {
            uint8_t c = src[k];
            if (!(c == '"' || c == '\\' || c < 0x20)) { out[w++] = c; k++; continue; }
        }
        if (w + 6 > cap) break;
        uint8_t c = src[k++];
        out[w++] = '\\';
        switch (c) {
        case '"': out[w++] = '"'; break;
        case '\\': out[w++] = '\\'; break;
        case '\n': out[w++] = 'n'; break;
        case '\r': out[w++] = 'r'; break;
        case '\t': out[w++] = 't'; break;
        default:
            out[w++] = 'u'; out[w++] = '0'; out[w++] = '0';
            out[w++] = (uint8_t)hex[c >> 4]; out[w++] = (uint8_t)hex[c & 15];
        }
    }
    *k_inout = k;
    return w;
}

#endif
