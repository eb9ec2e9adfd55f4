/* Products with weights in GGML's quantized blocks, as a GGUF file holds them (Q4_K, Q6_K,
 * Q8_0, Q4_0, Q4_1, Q5_0, Q5_1).
 *
 * Decode reads every weight once per token, so its speed is the bytes it reads. Q4_K holds
 * 4.5 bits a weight and Q6_K 6.5625, where torch's int4 kernel needs 5 (a bfloat16 scale and
 * zero per 32) and its int8 one 8: reading the blocks as they are is 10-18% fewer bytes, and
 * Q6_K and the 5-bit types stay exact instead of being re-quantized to int8.
 *
 * y = x W^T for a few rows of x (up to MAX_TOKENS), the way llama.cpp computes it: x is
 * quantized to int8 per 256 values (ggml's Q8_K), each superblock's 4- or 6-bit values are
 * unpacked into bytes with a few bitwise ops, and AVX512-VNNI's u8 x s8 dot products (64
 * multiply-adds an instruction) give each sub-block's integer sum, scaled in float32; Q4_K's
 * minima and Q6_K's offset of 32 come from per-sub-block sums of the quantized x. Measured
 * on a Zen 5 core, in cache: 23-26 G weights/s against 17-19 for the same loop on bfloat16
 * (AVX512-BF16, 32 an instruction) and 15 for torch's int4 kernel. The 32-weight blocks
 * (Q8_0, Q4_0 ... Q5_1) go the same way two blocks a vector, x quantized per 32 (ggml's Q8_0
 * and Q8_1), their offsets and minima from sums of the quantized x. Rows of W are split in
 * contiguous runs over torch's own OpenMP team. Longer inputs (a prefill) dequantize W to
 * bfloat16 here (exact values, one rounding) and multiply with torch's GEMM.
 *
 * Needs AVX-512 F/BW/VNNI (Cascade Lake, Ice Lake, Zen 4 and later; BF16, where there, only
 * rounds the dequantized values); elsewhere
 * chatapp_ggml_isa() says 0 and the engine converts the blocks to its int4/int8 forms.
 * Built at run time by engine/native.py with the machine's C compiler (-march=native).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QK 256          /* weights per superblock */
#define Q4_K_BYTES 144  /* f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 of nibbles */
#define Q6_K_BYTES 210  /* 128 bytes of low nibbles, 64 of high 2-bit parts, 16 int8 scales, d */
#define MAX_TOKENS 64
#define ROWS_PER_ITEM 16
#define PREFETCH_BYTES 1024

#define Q8_0_BYTES 34   /* f16 d, 32 int8 values */
#define Q4_0_BYTES 18   /* f16 d, 16 bytes of nibbles */
#define Q4_1_BYTES 20   /* f16 d, f16 m, 16 bytes of nibbles */
#define Q5_0_BYTES 22   /* f16 d, 4 bytes of fifth bits, 16 of nibbles */
#define Q5_1_BYTES 24   /* f16 d, f16 m, 4 bytes of fifth bits, 16 of nibbles */
enum { /* ggml's type numbers */
    GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8, GGML_Q4_K = 12,
    GGML_Q6_K = 14
};

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && \
    defined(__F16C__)
#include <immintrin.h>

int chatapp_ggml_isa(void) { return 1; }

static inline float f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline uint16_t bf16_bits(float f) { /* exact for the small integers used here */
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static inline uint16_t to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Q6_K's lookup tables (32 words each): word i -> bfloat16 of i - 32 and of i (for the 6-bit
 * values 0..63, permutex2var picks the table by bit 5). */
static inline void q6_tables(__m512i *lo, __m512i *hi) {
    uint16_t a[32], b[32];
    for (int i = 0; i < 32; i++) {
        a[i] = bf16_bits((float)(i - 32));
        b[i] = bf16_bits((float)i);
    }
    *lo = _mm512_loadu_si512(a);
    *hi = _mm512_loadu_si512(b);
}

/* ggml's get_scale_min_k4 on whole words (as its own AVX2 kernel does, but in a vector
 * register: scalar words stored and re-read as one vector stall store forwarding): the
 * eight 6-bit scales times d in lanes 0-7 and the eight minima times dmin in lanes 8-15.
 * Words u0 u1 u2 of the 12 bytes -> u0 & m6 | (u2 & m4) + (u0 >> 6 & m2) << 4 | u1 & m6 |
 * (u2 >> 4 & m4) + (u1 >> 6 & m2) << 4. */
static inline __m512 q4k_scales(const uint8_t *blk) {
    const __m128i u = _mm_loadu_si128((const __m128i *)(blk + 4)); /* 12 bytes and 4 of qs */
    const __m128i a = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));  /* u0 u2 u1 u2 */
    const __m128i b = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));  /* u0 u0 u1 u1 */
    const __m128i low = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                      _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i high = _mm_slli_epi32(
        _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303)), 4);
    __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_or_si128(low, high)));
    __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16(blk)), _mm512_set1_ps(f16(blk + 2)));
    return _mm512_mul_ps(v, d);
}

/* A Q4_K superblock's 256 values as bfloat16 numbers 128 + q (q 0..15), eight vectors of 32
 * in order: byte l of chunk c holds value 64c + l (low nibble) and 64c + 32 + l (high). The
 * nibble goes into the low mantissa bits of 128.0 (0x4300), where one step is exactly 1: one
 * bitwise op a vector instead of a lookup; the 128s are taken off with the minima. */
static inline void q4k_values(const uint8_t *qs, __m512i *w) {
    const __m512i low4 = _mm512_set1_epi16(0x000F), bias = _mm512_set1_epi16(0x4300);
    for (int c = 0; c < 4; c++) {
        __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
        w[2 * c] = _mm512_ternarylogic_epi32(v, low4, bias, 0xEA); /* (v & low4) | bias */
        w[2 * c + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), low4, bias, 0xEA);
    }
}

/* A Q6_K superblock's 256 values as bfloat16 integers -32..31 (q - 32), in order: half h,
 * group g holds values 128h + 32g + l from the low (g 0, 1) or high (g 2, 3) nibble of
 * ql[64h + 32(g % 2) + l] and bits 2g of qh[32h + l] (ggml's dequantize_row_q6_K). */
static inline void q6k_values(const uint8_t *ql, const uint8_t *qh, __m512i lo, __m512i hi,
                              __m512i *w) {
    const __m512i low4 = _mm512_set1_epi16(0x000F);
    for (int h = 0; h < 2; h++) {
        __m512i a = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(ql + 64 * h)));
        __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32)));
        __m512i c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(qh + 32 * h)));
        /* bits 0-3 from the nibble, bits 4-5 from qh (0xCA: low4 ? first : second); the
         * lookup reads only the low 6 bits of each word */
        __m512i q0 = _mm512_ternarylogic_epi32(low4, a, _mm512_slli_epi16(c, 4), 0xCA);
        __m512i q1 = _mm512_ternarylogic_epi32(low4, b, _mm512_slli_epi16(c, 2), 0xCA);
        __m512i q2 = _mm512_ternarylogic_epi32(low4, _mm512_srli_epi16(a, 4), c, 0xCA);
        __m512i q3 =
            _mm512_ternarylogic_epi32(low4, _mm512_srli_epi16(b, 4), _mm512_srli_epi16(c, 2), 0xCA);
        w[4 * h + 0] = _mm512_permutex2var_epi16(lo, q0, hi);
        w[4 * h + 1] = _mm512_permutex2var_epi16(lo, q1, hi);
        w[4 * h + 2] = _mm512_permutex2var_epi16(lo, q2, hi);
        w[4 * h + 3] = _mm512_permutex2var_epi16(lo, q3, hi);
    }
}

static inline float sum8(__m256 m) {
    __m128 m4 = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_add_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_add_ss(m4, _mm_movehdup_ps(m4)));
}

static inline void prefetch_ahead(const uint8_t *blk, int bytes) {
    for (int k = 0; k < bytes; k += 64)
        _mm_prefetch((const char *)(blk + PREFETCH_BYTES + k), _MM_HINT_T0);
}

static inline __m512 bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* Rows of x quantized per 256 values the way ggml quantizes activations for these blocks
 * (Q8_K): q = round(x / dx), dx = max |x| / 127, so that the products run on int8 dot products
 * (AVX512-VNNI: 64 multiply-adds an instruction, against 32 for bfloat16). q [n][nb][256]
 * holds Q4_K's sub-blocks in the order its nibbles come out of a 64-byte load (0 2 1 3 4 6 5
 * 7); sums [n][nb][16] holds dx times the sum of q over each 16 values (Q6_K's offsets) or,
 * in its first 8, over each 32 (Q4_K's minima). */
static void quantize_x(int type, const uint16_t *x, int64_t ldx, int64_t n, int64_t nb,
                       int8_t *q, float *dx, float *sums) {
    static const int slot[8] = {0, 2, 1, 3, 4, 6, 5, 7}; /* its own inverse */
    for (int64_t t = 0; t < n; t++) {
        for (int64_t b = 0; b < nb; b++) {
            const uint16_t *p = x + t * ldx + b * QK;
            __m512 v[16], amax = _mm512_setzero_ps();
            for (int i = 0; i < 16; i++) {
                v[i] = bf16x16(p + 16 * i);
                amax = _mm512_max_ps(amax, _mm512_abs_ps(v[i]));
            }
            const float d = _mm512_reduce_max_ps(amax) / 127.f, id = d > 0.f ? 1.f / d : 0.f;
            const int64_t k = t * nb + b;
            int8_t *dst = q + k * QK;
            int32_t s16[16];
            for (int i = 0; i < 16; i++) {
                __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(v[i], _mm512_set1_ps(id)));
                s16[i] = _mm512_reduce_add_epi32(qi);
                int pos = type == GGML_Q4_K ? slot[i / 2] * 32 + (i % 2) * 16 : 16 * i;
                _mm_storeu_si128((__m128i *)(dst + pos), _mm512_cvtepi32_epi8(qi));
            }
            dx[k] = d;
            for (int i = 0; i < 16; i++)
                sums[k * 16 + i] = type == GGML_Q4_K ? (i < 8 ? d * (float)(s16[2 * i] + s16[2 * i + 1]) : 0.f)
                                                     : d * (float)s16[i];
        }
    }
}

/* A Q4_K superblock as four vectors of 64 nibbles (bytes 0..15), in the slot order above,
 * with their per-lane scales (lanes 0-7 one sub-block, 8-15 the other) and the minima. */
static inline __attribute__((always_inline)) void q4k_block(const uint8_t *blk, __m512i *v,
                                                             __m512 *s, __m256 *dm) {
    const __m512 scales = q4k_scales(blk);
    const __m512i lanes = _mm512_srli_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 3); /* 0 or 1 */
    static const int first[4] = {0, 1, 4, 5}; /* sub-blocks (first[j], first[j] + 2) */
    for (int j = 0; j < 4; j++)
        s[j] = _mm512_permutexvar_ps(
            _mm512_add_epi32(_mm512_set1_epi32(first[j]), _mm512_slli_epi32(lanes, 1)), scales);
    *dm = _mm512_extractf32x8_ps(scales, 1);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i a = _mm512_loadu_si512(blk + 16), b = _mm512_loadu_si512(blk + 80);
    v[0] = _mm512_and_si512(a, m4);
    v[1] = _mm512_and_si512(_mm512_srli_epi16(a, 4), m4);
    v[2] = _mm512_and_si512(b, m4);
    v[3] = _mm512_and_si512(_mm512_srli_epi16(b, 4), m4);
}

/* A Q6_K superblock as four vectors of 64 6-bit values 0..63, in order, with their scales
 * (times d; lane i of vector j: values 64j + 4i .. 4i + 3, scale 4j + i / 4). */
static inline __attribute__((always_inline)) void q6k_block(const uint8_t *blk, __m512i *v,
                                                             __m512 *s, __m512 *s16) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 192));
    *s16 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(raw)),
                         _mm512_set1_ps(f16(blk + 208)));
    const __m512i quarter = _mm512_srli_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
    for (int j = 0; j < 4; j++)
        s[j] = _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set1_epi32(4 * j), quarter), *s16);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* qh's bits 2g..2g+1 to bits 4-5 of each byte: << 4, << 2 (groups 0, 1: the two halves
     * of the low-nibble vector), >> 0, >> 2 (groups 2, 3) */
    const __m512i left = _mm512_mask_set1_epi16(_mm512_set1_epi16(4), 0xFFFF0000, 2);
    const __m512i right = _mm512_mask_set1_epi16(_mm512_setzero_si512(), 0xFFFF0000, 2);
    for (int h = 0; h < 2; h++) {
        const __m512i l = _mm512_loadu_si512(blk + 64 * h);
        const __m512i qh =
            _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
        /* 0xF8: a | (b & c) */
        v[2 * h] = _mm512_ternarylogic_epi32(_mm512_and_si512(l, m4), _mm512_sllv_epi16(qh, left),
                                             m30, 0xF8);
        v[2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                                 _mm512_srlv_epi16(qh, right), m30, 0xF8);
    }
}

/* The superblock's four 64-value int8 dot products, scaled per lane: sum over the block of
 * scale * w * q (still to be multiplied by dx). */
static inline __attribute__((always_inline)) __m512 dot4(const __m512i *v, const __m512 *s,
                                                          const int8_t *q) {
    const __m512i z = _mm512_setzero_si512();
    __m512 f = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, v[0], _mm512_loadu_si512(q))), s[0]);
    for (int j = 1; j < 4; j++)
        f = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, v[j], _mm512_loadu_si512(q + 64 * j))),
            s[j], f);
    return f;
}

/* Rows [r0, r1) of y = x W^T from quantize_x's rows of x; y is [n, ldy]. One row of x (a
 * decode step) keeps its accumulators in registers; more keep theirs in memory, where the
 * rows of x are the independent chains. */
static void q4k_rows(const uint8_t *w, int64_t r0, int64_t r1, int64_t nb, const int8_t *q,
                     const float *dx, const float *sums, int64_t n, uint16_t *y, int64_t ldy) {
    __m512 acc[MAX_TOKENS];
    __m256 mins[MAX_TOKENS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *blk = w + r * nb * Q4_K_BYTES;
        for (int64_t t = 0; t < n; t++) acc[t] = _mm512_setzero_ps(), mins[t] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++, blk += Q4_K_BYTES) {
            prefetch_ahead(blk, Q4_K_BYTES);
            __m512i v[4];
            __m512 s[4];
            __m256 dm;
            q4k_block(blk, v, s, &dm);
            for (int64_t t = 0; t < n; t++) {
                const int64_t k = t * nb + b;
                acc[t] = _mm512_fmadd_ps(dot4(v, s, q + k * QK), _mm512_set1_ps(dx[k]), acc[t]);
                mins[t] = _mm256_fmadd_ps(dm, _mm256_loadu_ps(sums + k * 16), mins[t]);
            }
        }
        for (int64_t t = 0; t < n; t++)
            y[t * ldy + r] = to_bf16(_mm512_reduce_add_ps(acc[t]) - sum8(mins[t]));
    }
}

static void q6k_rows(const uint8_t *w, int64_t r0, int64_t r1, int64_t nb, const int8_t *q,
                     const float *dx, const float *sums, int64_t n, uint16_t *y, int64_t ldy) {
    __m512 acc[MAX_TOKENS], offs[MAX_TOKENS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *blk = w + r * nb * Q6_K_BYTES;
        for (int64_t t = 0; t < n; t++) acc[t] = _mm512_setzero_ps(), offs[t] = _mm512_setzero_ps();
        for (int64_t b = 0; b < nb; b++, blk += Q6_K_BYTES) {
            prefetch_ahead(blk, Q6_K_BYTES);
            __m512i v[4];
            __m512 s[4], s16;
            q6k_block(blk, v, s, &s16);
            for (int64_t t = 0; t < n; t++) {
                const int64_t k = t * nb + b;
                acc[t] = _mm512_fmadd_ps(dot4(v, s, q + k * QK), _mm512_set1_ps(dx[k]), acc[t]);
                offs[t] = _mm512_fmadd_ps(s16, _mm512_loadu_ps(sums + k * 16), offs[t]);
            }
        }
        for (int64_t t = 0; t < n; t++) /* the values are q + 32 */
            y[t * ldy + r] =
                to_bf16(_mm512_reduce_add_ps(acc[t]) - 32.f * _mm512_reduce_add_ps(offs[t]));
    }
}

static inline int64_t row_bytes(int type, int64_t cols) {
    return cols / QK * (type == GGML_Q4_K ? Q4_K_BYTES : Q6_K_BYTES);
}

/* Blocks of 32 weights (ggml's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), taken two at a time: one
 * 64-byte vector of values, lanes 0-7 the first block's, 8-15 the second's. */
static inline int q32_bytes(int type) {
    switch (type) {
    case GGML_Q4_0: return Q4_0_BYTES;
    case GGML_Q4_1: return Q4_1_BYTES;
    case GGML_Q5_0: return Q5_0_BYTES;
    case GGML_Q5_1: return Q5_1_BYTES;
    default: return Q8_0_BYTES;
    }
}

/* Rows of x quantized per 32 values as ggml's Q8_0 / Q8_1: q = round(x / dx), dx = max |x| /
 * 127. For each pair of 32-blocks (k = t * pairs + b): 64 values of q, dx16 [k][16] the block's
 * dx in the lanes its products land in, and sum4 [k][16] the sums of the four q each lane of
 * a dot product takes (the offsets and minima of the 4- and 5-bit types). */
static void quantize_x32(const uint16_t *x, int64_t ldx, int64_t n, int64_t cols, int8_t *q,
                         float *dx16, int32_t *sum4) {
    const int64_t pairs = cols / 64;
    const __m512i ones = _mm512_set1_epi8(1), z = _mm512_setzero_si512();
    for (int64_t t = 0; t < n; t++) {
        for (int64_t g = 0; g < cols / 32; g++) {
            const uint16_t *p = x + t * ldx + 32 * g;
            const __m512 a = bf16x16(p), b = bf16x16(p + 16);
            const float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
            const float d = m / 127.f, id = d > 0.f ? 1.f / d : 0.f;
            int8_t *dst = q + t * cols + 32 * g;
            _mm_storeu_si128((__m128i *)dst,
                             _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, _mm512_set1_ps(id)))));
            _mm_storeu_si128((__m128i *)(dst + 16),
                             _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(b, _mm512_set1_ps(id)))));
            for (int i = 0; i < 8; i++) dx16[(t * pairs + g / 2) * 16 + (g % 2) * 8 + i] = d;
        }
        for (int64_t b = 0; b < pairs; b++) {
            const int64_t k = t * pairs + b;
            _mm512_storeu_si512(sum4 + k * 16, _mm512_dpbusd_epi32(z, ones, _mm512_loadu_si512(q + k * 64)));
        }
    }
}

/* Q8_0 (one f16 scale a block): the u8 x s8 product takes |w| and x with w's sign. */
static void q8_0_rows(const uint8_t *w, int64_t r0, int64_t r1, int64_t cols, const int8_t *q,
                      const float *dx16, int64_t n, uint16_t *y, int64_t ldy) {
    const int64_t pairs = cols / 64, rb = cols / 32 * Q8_0_BYTES;
    const __m512i z = _mm512_setzero_si512();
    __m512 acc[MAX_TOKENS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *blk = w + r * rb;
        for (int64_t t = 0; t < n; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t b = 0; b < pairs; b++, blk += 2 * Q8_0_BYTES) {
            prefetch_ahead(blk, 2 * Q8_0_BYTES);
            const __m512i v = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 2))),
                _mm256_loadu_si256((const __m256i *)(blk + Q8_0_BYTES + 2)), 1);
            const __mmask64 neg = _mm512_movepi8_mask(v);
            const __m512i mag = _mm512_abs_epi8(v);
            const __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16(blk)),
                                                  _mm512_set1_ps(f16(blk + Q8_0_BYTES)));
            for (int64_t t = 0; t < n; t++) {
                const int64_t k = t * pairs + b;
                __m512i xq = _mm512_loadu_si512(q + k * 64);
                xq = _mm512_mask_sub_epi8(xq, neg, z, xq);
                const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, mag, xq));
                acc[t] = _mm512_fmadd_ps(p, _mm512_mul_ps(d, _mm512_loadu_ps(dx16 + k * 16)), acc[t]);
            }
        }
        for (int64_t t = 0; t < n; t++) y[t * ldy + r] = to_bf16(_mm512_reduce_add_ps(acc[t]));
    }
}

/* A pair of Q4_0 / Q4_1 / Q5_0 / Q5_1 blocks as 64 values 0..15 (0..31), in order: byte j of
 * a block's 16 bytes of nibbles holds value j (low) and j + 16 (high); the 5-bit types' fifth
 * bits are a 32-bit word, bit j for value j, which masks 16 into the bytes that have it. */
static inline __attribute__((always_inline)) __m512i q32_pair(int type, const uint8_t *b0,
                                                              const uint8_t *b1) {
    const int five = type == GGML_Q5_0 || type == GGML_Q5_1;
    const int qs = (type == GGML_Q4_0 ? 2 : type == GGML_Q4_1 ? 4 : type == GGML_Q5_0 ? 6 : 8);
    const __m256i two = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + qs))),
        _mm_loadu_si128((const __m128i *)(b1 + qs)), 1);
    const __m512i both = _mm512_castsi256_si512(two);
    /* 128-bit lanes b0 b0 b1 b1; the second of each pair shifted to its high nibbles */
    const __m512i v = _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(1, 1, 0, 0));
    const __m512i shifts = _mm512_mask_set1_epi16(_mm512_setzero_si512(), 0xFF00FF00, 4);
    __m512i out = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), _mm512_set1_epi8(0x0F));
    if (five) {
        uint32_t h0, h1;
        memcpy(&h0, b0 + qs - 4, 4);
        memcpy(&h1, b1 + qs - 4, 4);
        out = _mm512_or_si512(out, _mm512_maskz_set1_epi8(((uint64_t)h1 << 32) | h0, 0x10));
    }
    return out;
}

/* Q4_0 / Q5_0 (w = d (q - 8) or d (q - 16)) and Q4_1 / Q5_1 (w = d q + m): a lane's integer sum
 * minus 8 (16) times its x's sum4, or plus m times it, scaled by d dx. */
static inline __attribute__((always_inline)) void q32_rows(int type, const uint8_t *w,
                                                           int64_t r0, int64_t r1, int64_t cols,
                                                           const int8_t *q, const float *dx16,
                                                           const int32_t *sum4, int64_t n,
                                                           uint16_t *y, int64_t ldy) {
    const int bytes = q32_bytes(type), has_min = type == GGML_Q4_1 || type == GGML_Q5_1;
    const int offset_bits = type == GGML_Q4_0 ? 3 : 4; /* Q4_0: 8, Q5_0: 16 */
    const int64_t pairs = cols / 64, rb = cols / 32 * bytes;
    const __m512i z = _mm512_setzero_si512();
    __m512 acc[MAX_TOKENS];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *blk = w + r * rb;
        for (int64_t t = 0; t < n; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t b = 0; b < pairs; b++, blk += 2 * bytes) {
            prefetch_ahead(blk, 2 * bytes);
            const __m512i v = q32_pair(type, blk, blk + bytes);
            const __m512 d = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16(blk)),
                                                  _mm512_set1_ps(f16(blk + bytes)));
            const __m512 m = has_min ? _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16(blk + 2)),
                                                            _mm512_set1_ps(f16(blk + bytes + 2)))
                                     : d;
            for (int64_t t = 0; t < n; t++) {
                const int64_t k = t * pairs + b;
                const __m512i p = _mm512_dpbusd_epi32(z, v, _mm512_loadu_si512(q + k * 64));
                const __m512i s = _mm512_loadu_si512(sum4 + k * 16);
                const __m512 dx = _mm512_loadu_ps(dx16 + k * 16);
                if (has_min) {
                    const __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), d,
                                                     _mm512_mul_ps(_mm512_cvtepi32_ps(s), m));
                    acc[t] = _mm512_fmadd_ps(f, dx, acc[t]);
                } else {
                    const __m512i c = _mm512_sub_epi32(p, _mm512_slli_epi32(s, offset_bits));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_mul_ps(d, dx), acc[t]);
                }
            }
        }
        for (int64_t t = 0; t < n; t++) y[t * ldy + r] = to_bf16(_mm512_reduce_add_ps(acc[t]));
    }
}

static int q32_matmul(int type, const uint8_t *w, int64_t rows, int64_t cols, const uint16_t *x,
                      int64_t ldx, int64_t n, uint16_t *y, int64_t ldy, int threads) {
    const int64_t pairs = cols / 64;
    int8_t *q = aligned_alloc(64, (size_t)(n * cols));
    float *dx16 = malloc((size_t)(n * pairs * 16) * sizeof(float));
    int32_t *sum4 = malloc((size_t)(n * pairs * 16) * sizeof(int32_t));
    if (!q || !dx16 || !sum4) {
        free(q), free(dx16), free(sum4);
        return -1;
    }
    quantize_x32(x, ldx, n, cols, q, dx16, sum4);
    const int64_t items = (rows + ROWS_PER_ITEM - 1) / ROWS_PER_ITEM;
    const int team = items > 1 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t i = 0; i < items; i++) {
        const int64_t r0 = i * ROWS_PER_ITEM;
        const int64_t r1 = r0 + ROWS_PER_ITEM < rows ? r0 + ROWS_PER_ITEM : rows;
        switch (type) { /* each call inlines its own type's block decoding */
        case GGML_Q4_0: q32_rows(GGML_Q4_0, w, r0, r1, cols, q, dx16, sum4, n, y, ldy); break;
        case GGML_Q4_1: q32_rows(GGML_Q4_1, w, r0, r1, cols, q, dx16, sum4, n, y, ldy); break;
        case GGML_Q5_0: q32_rows(GGML_Q5_0, w, r0, r1, cols, q, dx16, sum4, n, y, ldy); break;
        case GGML_Q5_1: q32_rows(GGML_Q5_1, w, r0, r1, cols, q, dx16, sum4, n, y, ldy); break;
        default: q8_0_rows(w, r0, r1, cols, q, dx16, n, y, ldy);
        }
    }
    free(q), free(dx16), free(sum4);
    return 0;
}

static inline int is_q32(int type) {
    return type == GGML_Q8_0 || type == GGML_Q4_0 || type == GGML_Q4_1 || type == GGML_Q5_0 ||
           type == GGML_Q5_1;
}

/* y [n, rows] (rows ldy apart) = x [n, cols] (rows ldx apart) times W^T, W [rows, cols] in
 * `type` blocks. Returns 0, or -1 for an input it does not take (the caller then uses
 * another path). */
int chatapp_ggml_matmul(int type, const uint8_t *w, int64_t rows, int64_t cols,
                        const uint16_t *x, int64_t ldx, int64_t n, uint16_t *y, int64_t ldy,
                        int threads) {
    if (is_q32(type) && cols % 64 == 0 && n >= 1 && n <= MAX_TOKENS)
        return q32_matmul(type, w, rows, cols, x, ldx, n, y, ldy, threads);
    if ((type != GGML_Q4_K && type != GGML_Q6_K) || cols % QK || n < 1 || n > MAX_TOKENS)
        return -1;
    const int64_t nb = cols / QK;
    int8_t *q = aligned_alloc(64, (size_t)(n * nb * QK));
    float *dx = malloc((size_t)(n * nb) * sizeof(float));
    float *sums = malloc((size_t)(n * nb * 16) * sizeof(float));
    if (!q || !dx || !sums) {
        free(q), free(dx), free(sums);
        return -1;
    }
    quantize_x(type, x, ldx, n, nb, q, dx, sums);
    const int64_t items = (rows + ROWS_PER_ITEM - 1) / ROWS_PER_ITEM;
    const int team = items > 1 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t i = 0; i < items; i++) {
        const int64_t r0 = i * ROWS_PER_ITEM;
        const int64_t r1 = r0 + ROWS_PER_ITEM < rows ? r0 + ROWS_PER_ITEM : rows;
        if (type == GGML_Q4_K)
            q4k_rows(w, r0, r1, nb, q, dx, sums, n, y, ldy);
        else
            q6k_rows(w, r0, r1, nb, q, dx, sums, n, y, ldy);
    }
    free(q), free(dx), free(sums);
    return 0;
}

static inline void store_bf16(uint16_t *dst, __m512 a, __m512 b) { /* 32 values, rounded */
#if defined(__AVX512BF16__)
    _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(b, a));
#else /* round to nearest even by hand (the values are finite) */
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    __m512i ua = _mm512_castps_si512(a), ub = _mm512_castps_si512(b);
    ua = _mm512_add_epi32(ua, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(ua, 16), one)));
    ub = _mm512_add_epi32(ub, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(ub, 16), one)));
    _mm256_storeu_si256((__m256i *)dst, _mm512_cvtepi32_epi16(_mm512_srli_epi32(ua, 16)));
    _mm256_storeu_si256((__m256i *)(dst + 16), _mm512_cvtepi32_epi16(_mm512_srli_epi32(ub, 16)));
#endif
}

static inline __m512 bf16_lo(__m512i v) { /* values 0..15 of 32 bfloat16, as float32 */
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
}

static inline __m512 bf16_hi(__m512i v) { /* values 16..31 */
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
}

/* One 32-block of any of the q32 types -> 32 bfloat16 values. */
static inline void q32_dequant_block(int type, const uint8_t *blk, uint16_t *dst) {
    const __m512 d = _mm512_set1_ps(f16(blk));
    if (type == GGML_Q8_0) {
        const __m128i *v = (const __m128i *)(blk + 2);
        store_bf16(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(v))), d),
                   _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(v + 1))), d));
        return;
    }
    const int has_min = type == GGML_Q4_1 || type == GGML_Q5_1;
    const int five = type == GGML_Q5_0 || type == GGML_Q5_1;
    const int qs = (type == GGML_Q4_0 ? 2 : type == GGML_Q4_1 ? 4 : type == GGML_Q5_0 ? 6 : 8);
    /* w = d q + m, with m = -8 d (Q4_0) or -16 d (Q5_0) */
    const __m512 m = has_min ? _mm512_set1_ps(f16(blk + 2))
                             : _mm512_mul_ps(d, _mm512_set1_ps(five ? -16.f : -8.f));
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + qs)));
    __m512i lo = _mm512_and_si512(b, _mm512_set1_epi32(15)), hi = _mm512_srli_epi32(b, 4);
    if (five) {
        uint32_t h;
        memcpy(&h, blk + qs - 4, 4);
        lo = _mm512_mask_or_epi32(lo, (__mmask16)h, lo, _mm512_set1_epi32(16));
        hi = _mm512_mask_or_epi32(hi, (__mmask16)(h >> 16), hi, _mm512_set1_epi32(16));
    }
    store_bf16(dst, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, m),
               _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), d, m));
}

/* W [rows, cols] in `type` blocks -> bfloat16 [rows, cols] (ld apart), rounded once from
 * float32: what a prefill multiplies with torch's GEMM, and embedding rows. */
int chatapp_ggml_dequant(int type, const uint8_t *w, int64_t rows, int64_t cols, uint16_t *out,
                         int64_t ld, int threads) {
    if (is_q32(type) && cols % 32 == 0) {
        const int64_t nb = cols / 32, bytes = q32_bytes(type);
        const int team = rows >= 2 * ROWS_PER_ITEM ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *blk = w + r * nb * bytes;
            for (int64_t b = 0; b < nb; b++, blk += bytes)
                q32_dequant_block(type, blk, out + r * ld + 32 * b);
        }
        return 0;
    }
    if ((type != GGML_Q4_K && type != GGML_Q6_K) || cols % QK) return -1;
    const int64_t nb = cols / QK, rb = row_bytes(type, cols);
    const int team = rows >= 2 * ROWS_PER_ITEM ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t r = 0; r < rows; r++) {
        __m512i lo, hi;
        q6_tables(&lo, &hi);
        const uint8_t *blk = w + r * rb;
        uint16_t *dst = out + r * ld;
        for (int64_t b = 0; b < nb; b++, dst += QK) {
            __m512i v[8];
            if (type == GGML_Q4_K) {
                float sm[16];
                _mm512_storeu_ps(sm, q4k_scales(blk));
                q4k_values(blk + 16, v);
                for (int j = 0; j < 8; j++) {
                    /* s q - m = s (128 + q) - (m + 128 s): the values carry 128 */
                    __m512 s = _mm512_set1_ps(sm[j]), m = _mm512_set1_ps(sm[8 + j] + 128.f * sm[j]);
                    store_bf16(dst + 32 * j, _mm512_fmsub_ps(bf16_lo(v[j]), s, m),
                               _mm512_fmsub_ps(bf16_hi(v[j]), s, m));
                }
                blk += Q4_K_BYTES;
            } else {
                const float d = f16(blk + 208);
                const int8_t *sc = (const int8_t *)(blk + 192);
                q6k_values(blk, blk + 128, lo, hi, v);
                for (int j = 0; j < 8; j++) {
                    __m512 a = _mm512_set1_ps(d * (float)sc[2 * j]);
                    __m512 c = _mm512_set1_ps(d * (float)sc[2 * j + 1]);
                    store_bf16(dst + 32 * j, _mm512_mul_ps(bf16_lo(v[j]), a),
                               _mm512_mul_ps(bf16_hi(v[j]), c));
                }
                blk += Q6_K_BYTES;
            }
        }
    }
    return 0;
}

#else /* no AVX512-VNNI: the engine converts the blocks to its int4/int8 forms */
int chatapp_ggml_isa(void) { return 0; }
int chatapp_ggml_matmul(int type, const uint8_t *w, int64_t rows, int64_t cols,
                        const uint16_t *x, int64_t ldx, int64_t n, uint16_t *y, int64_t ldy,
                        int threads) {
    (void)type, (void)w, (void)rows, (void)cols, (void)x, (void)ldx, (void)n, (void)y;
    (void)ldy, (void)threads;
    return -1;
}
int chatapp_ggml_dequant(int type, const uint8_t *w, int64_t rows, int64_t cols, uint16_t *out,
                         int64_t ld, int threads) {
    (void)type, (void)w, (void)rows, (void)cols, (void)out, (void)ld, (void)threads;
    return -1;
}
#endif
