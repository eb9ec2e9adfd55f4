/* Attention of one new token over a bfloat16 KV cache, for CPUs with AVX-512.
 *
 * torch's CPU SDPA runs this shape (a few query rows against thousands of keys) at ~5 GB/s:
 * its flash kernel makes two small GEMM calls per 512-key block per head. Here each key and
 * value row comes from memory once, for all the query heads that share it (prefetched ahead),
 * with float32 accumulation (bfloat16 products are exact in float32), a float32 softmax and
 * one rounding of the output. With AVX512-BF16, scores are taken sixteen keys at a time and
 * summed across lanes together, and the values two keys per dot product, their weights
 * rounded to bfloat16 as torch's flash kernel rounds them for its second GEMM. Long contexts
 * are split into blocks of keys, spread over torch's own OpenMP team and merged by their
 * softmax maxima and sums (flash-decoding).
 *
 * Built at run time by engine/native.py with the machine's C compiler (-march=native); the
 * engine falls back to SDPA where it cannot be built or the CPU lacks AVX-512.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256     /* keys per work item */
#define MAX_GROUP 16  /* query heads per key/value head */
#define MAX_DIM 256   /* head_dim */
#define PREFETCH 8    /* rows ahead, in the key-by-key loops */
#define AHEAD 32      /* keys ahead, in the sixteen-key loop */

#if defined(__AVX512F__)
#include <immintrin.h>

int chatapp_decode_attention_isa(void) {
#if defined(__AVX512BF16__)
    return 2;
#else
    return 1;
#endif
}

static inline __m512 load_bf16x16(const uint16_t *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* exp(x) on 16 lanes (x <= 0 here): x = n ln2 + r with |r| <= ln2 / 2, a degree-6 Taylor
 * polynomial for exp(r) (relative error < 2e-7) and 2^n by scalef. */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693147181f), x);
    __m512 p = _mm512_set1_ps(1.f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}

static inline uint16_t to_bf16(float f) { /* round to nearest even, NaN kept */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#if defined(__AVX512BF16__)
/* Sixteen float32 vectors to one whose lane j is the sum of a[j]'s lanes: a transpose-add
 * tree of 45 instructions, where sixteen horizontal sums take about 140. */
static inline __m512 sum16(const __m512 *a) {
    __m512 b[8], c[4], d[2];
    for (int j = 0; j < 8; j++)
        b[j] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * j], a[2 * j + 1]),
                             _mm512_unpackhi_ps(a[2 * j], a[2 * j + 1]));
    for (int j = 0; j < 4; j++) {
        __m512d x = _mm512_castps_pd(b[2 * j]), y = _mm512_castps_pd(b[2 * j + 1]);
        c[j] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int j = 0; j < 2; j++)
        d[j] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * j], c[2 * j + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * j], c[2 * j + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88),
                         _mm512_shuffle_f32x4(d[0], d[1], 0xdd));
}

/* 32 bfloat16 of a row from p on: 16 and zeros where 16 are left, zeros where none is. */
static inline __m512i load_bf16x32(const uint16_t *p, int64_t left) {
    if (left >= 32) return _mm512_loadu_si512(p);
    return left >= 16 ? _mm512_maskz_loadu_epi16(0xffff, p) : _mm512_setzero_si512();
}

/* Scores of `n` keys against one query row: s[t] = scale * q . k[t]. Sixteen keys at a
 * time with one accumulator each, summed across lanes together. */
static inline __attribute__((always_inline)) void scores(const uint16_t *q, const uint16_t *k,
                                                         const uint16_t *v, int64_t n,
                                                         const int64_t dim, float scale, float *s,
                                                         int first) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
        __m512 a[16];
        for (int j = 0; j < 16; j++) a[j] = _mm512_setzero_ps();
        if (first) /* the first row's pass brings the block's keys and values in, ahead */
            for (int64_t b = 0; b < 16 * dim; b += 32) {
                _mm_prefetch((const char *)(k + (t + AHEAD) * dim + b), _MM_HINT_T0);
                _mm_prefetch((const char *)(v + (t + AHEAD) * dim + b), _MM_HINT_T1);
            }
        for (int64_t d = 0; d < dim; d += 32) {
            const __m512bh qd = (__m512bh)load_bf16x32(q + d, dim - d);
            for (int j = 0; j < 16; j++)
                a[j] = _mm512_dpbf16_ps(a[j], qd,
                                        (__m512bh)load_bf16x32(k + (t + j) * dim + d, dim - d));
        }
        _mm512_storeu_ps(s + t, _mm512_mul_ps(sum16(a), vs));
    }
    for (; t < n; t++) {
        __m512 a = _mm512_setzero_ps();
        for (int64_t d = 0; d < dim; d += 32)
            a = _mm512_dpbf16_ps(a, (__m512bh)load_bf16x32(q + d, dim - d),
                                 (__m512bh)load_bf16x32(k + t * dim + d, dim - d));
        s[t] = _mm512_reduce_add_ps(a) * scale;
    }
}

/* The weighted sum of `n` value rows for GN query rows, over the 64 columns from d (fewer
 * where the row ends): two keys per bfloat16 dot product, their rows interleaved word by
 * word, the weights p (bfloat16, BLOCK per row, p[n] = 0 where n is odd) broadcast in pairs.
 * The interleave leaves columns in the order 0-3, 8-11, ... (lo) and 4-7, 12-15, ... (hi)
 * of each 32; restored at the end. */
static inline __attribute__((always_inline)) void weighted_values(
    const uint16_t *p, const uint16_t *v, int64_t n, const int64_t dim, int64_t d, const int GN,
    float *acc) {
    __m512 lo[4][2], hi[4][2];
    for (int g = 0; g < GN; g++) lo[g][0] = hi[g][0] = lo[g][1] = hi[g][1] = _mm512_setzero_ps();
    const int64_t left = dim - d;
    for (int64_t t = 0; t < n; t += 2) {
        __m512bh x[2][2];
        for (int c = 0; c < 2; c++) {
            const __m512i r0 = load_bf16x32(v + t * dim + d + 32 * c, left - 32 * c);
            const __m512i r1 = t + 1 < n ? load_bf16x32(v + (t + 1) * dim + d + 32 * c, left - 32 * c)
                                         : _mm512_setzero_si512();
            x[c][0] = (__m512bh)_mm512_unpacklo_epi16(r0, r1);
            x[c][1] = (__m512bh)_mm512_unpackhi_epi16(r0, r1);
        }
        for (int g = 0; g < GN; g++) {
            int32_t pair;
            memcpy(&pair, p + g * BLOCK + t, 4);
            const __m512bh w = (__m512bh)_mm512_set1_epi32(pair);
            for (int c = 0; c < 2; c++) {
                lo[g][c] = _mm512_dpbf16_ps(lo[g][c], w, x[c][0]);
                hi[g][c] = _mm512_dpbf16_ps(hi[g][c], w, x[c][1]);
            }
        }
    }
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29,
                                             30, 31);
    for (int g = 0; g < GN; g++)
        for (int c = 0; c < 2; c++) {
            float *dst = acc + g * dim + d + 32 * c;
            if (left - 32 * c >= 16)
                _mm512_storeu_ps(dst, _mm512_permutex2var_ps(lo[g][c], first, hi[g][c]));
            if (left - 32 * c >= 32)
                _mm512_storeu_ps(dst + 16, _mm512_permutex2var_ps(lo[g][c], second, hi[g][c]));
        }
}

/* One work item: keys [t0, t0 + n) of one key/value head, for its `group` query rows.
 * Writes the rows' unnormalised outputs acc[g][dim], maxima m[g] and sums z[g]. */
static inline __attribute__((always_inline)) void block_attention(
    const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t n, int64_t group,
    const int64_t dim, float scale, float *acc, float *m, float *z) {
    float s[BLOCK];
    uint16_t p[MAX_GROUP * BLOCK + 2];
    for (int64_t g = 0; g < group; g++) { /* the block's keys stay in L1/L2 across rows */
        scores(q + g * dim, k, v, n, dim, scale, s, g == 0);
        float sum = 0.f;
        __m512 vm = _mm512_set1_ps(-INFINITY), vz = _mm512_setzero_ps();
        int64_t t = 0;
        for (; t + 16 <= n; t += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + t));
        float mx = _mm512_reduce_max_ps(vm);
        for (; t < n; t++) mx = s[t] > mx ? s[t] : mx;
        vm = _mm512_set1_ps(mx);
        uint16_t *pg = p + g * BLOCK;
        t = 0;
        for (; t + 16 <= n; t += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + t), vm));
            _mm256_storeu_si256((__m256i *)(pg + t), (__m256i)_mm512_cvtneps_pbh(e));
            vz = _mm512_add_ps(vz, e);
        }
        for (; t < n; t++) {
            float e = expf(s[t] - mx);
            pg[t] = to_bf16(e);
            sum += e;
        }
        if (n & 1) pg[n] = 0; /* the partner of an odd last key */
        m[g] = mx;
        z[g] = sum + _mm512_reduce_add_ps(vz);
    }
    for (int64_t g = 0; g < group; g += 4) {
        const int64_t rows = group - g < 4 ? group - g : 4;
        for (int64_t d = 0; d < dim; d += 64) {
            const uint16_t *pg = p + g * BLOCK;
            float *ag = acc + g * dim;
            switch (rows) { /* a constant count keeps the accumulators in registers */
            case 1: weighted_values(pg, v, n, dim, d, 1, ag); break;
            case 2: weighted_values(pg, v, n, dim, d, 2, ag); break;
            case 3: weighted_values(pg, v, n, dim, d, 3, ag); break;
            default: weighted_values(pg, v, n, dim, d, 4, ag);
            }
        }
    }
}
#else
/* One work item: keys [t0, t0 + n) of one key/value head, for its `group` query rows.
 * Writes the rows' unnormalised outputs acc[g][dim], maxima m[g] and sums z[g]. */
static inline __attribute__((always_inline)) void block_attention(
    const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t n, int64_t group,
    const int64_t dim, float scale, float *acc, float *m, float *z) {
    float s[MAX_GROUP * BLOCK];
    for (int64_t g = 0; g < group; g++) { /* the block's keys stay in L1/L2 across rows */
        const uint16_t *qg = q + g * dim;
        for (int64_t t = 0; t < n; t++) {
            const uint16_t *kt = k + t * dim;
            if (g == 0) _mm_prefetch((const char *)(kt + PREFETCH * dim), _MM_HINT_T0);
            __m512 a = _mm512_setzero_ps();
            int64_t d = 0;
            for (; d < dim; d += 16)
                a = _mm512_fmadd_ps(load_bf16x16(qg + d), load_bf16x16(kt + d), a);
            s[g * BLOCK + t] = _mm512_reduce_add_ps(a) * scale;
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float *sg = s + g * BLOCK, mx = -INFINITY, sum = 0.f;
        for (int64_t t = 0; t < n; t++) mx = sg[t] > mx ? sg[t] : mx;
        __m512 vm = _mm512_set1_ps(mx), vz = _mm512_setzero_ps();
        int64_t t = 0;
        for (; t + 16 <= n; t += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sg + t), vm));
            _mm512_storeu_ps(sg + t, e);
            vz = _mm512_add_ps(vz, e);
        }
        for (; t < n; t++) {
            sg[t] = expf(sg[t] - mx);
            sum += sg[t];
        }
        m[g] = mx;
        z[g] = sum + _mm512_reduce_add_ps(vz);
    }
    const int64_t lanes = dim / 16;
    for (int64_t g = 0; g < group; g++) {
        __m512 a[MAX_DIM / 16];
        const float *sg = s + g * BLOCK;
        for (int64_t d = 0; d < lanes; d++) a[d] = _mm512_setzero_ps();
        for (int64_t t = 0; t < n; t++) {
            const uint16_t *vt = v + t * dim;
            if (g == 0) _mm_prefetch((const char *)(vt + PREFETCH * dim), _MM_HINT_T0);
            const __m512 p = _mm512_set1_ps(sg[t]);
            for (int64_t d = 0; d < lanes; d++)
                a[d] = _mm512_fmadd_ps(p, load_bf16x16(vt + 16 * d), a[d]);
        }
        for (int64_t d = 0; d < lanes; d++) _mm512_storeu_ps(acc + g * dim + 16 * d, a[d]);
    }
}

#endif

static void block_dispatch(const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t n,
                           int64_t group, int64_t dim, float scale, float *acc, float *m,
                           float *z) {
    /* Constant head sizes let the compiler keep the accumulators in registers: 8-13% faster
     * at 64 and 128 than the general case, but each one costs compile time (the first load
     * on a machine waits for it). 256 (Gemma 3) gained ~3% for ~0.7 s of cc: left general. */
    switch (dim) {
    case 64: block_attention(q, k, v, n, group, 64, scale, acc, m, z); break;
    case 128: block_attention(q, k, v, n, group, 128, scale, acc, m, z); break;
    default: block_attention(q, k, v, n, group, dim, scale, acc, m, z);
    }
}

/* q:   [kv_heads, group, dim], contiguous.
 * k/v: element (h, t, d) at h * k_head_stride + t * dim + d (v: v_head_stride), t < T.
 * out: [kv_heads, group, dim], contiguous.
 * Returns 0, or -1 for a shape it does not take (the caller then uses SDPA). */
int chatapp_decode_attention(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                             uint16_t *out, int64_t kv_heads, int64_t group, int64_t dim,
                             int64_t T, int64_t k_head_stride, int64_t v_head_stride, float scale,
                             int threads) {
    if (group < 1 || group > MAX_GROUP || dim % 16 || dim > MAX_DIM || T < 1) return -1;
    const int64_t blocks = (T + BLOCK - 1) / BLOCK, items = kv_heads * blocks;
    const int64_t row = group * (dim + 2); /* acc, m and z of one item's rows */
    float *part = malloc((size_t)(items * row) * sizeof(float));
    if (!part) return -1;
    int team = items > 1 ? threads : 1;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t i = 0; i < items; i++) {
        const int64_t h = i / blocks, t0 = (i % blocks) * BLOCK;
        const int64_t n = T - t0 < BLOCK ? T - t0 : BLOCK;
        float *p = part + i * row;
        block_dispatch(q + h * group * dim, k + h * k_head_stride + t0 * dim,
                       v + h * v_head_stride + t0 * dim, n, group, dim, scale, p,
                       p + group * dim, p + group * dim + group);
    }
    for (int64_t h = 0; h < kv_heads; h++) {
        for (int64_t g = 0; g < group; g++) {
            float mx = -INFINITY, z = 0.f, o[MAX_DIM];
            for (int64_t b = 0; b < blocks; b++) {
                float mb = part[(h * blocks + b) * row + group * dim + g];
                mx = mb > mx ? mb : mx;
            }
            memset(o, 0, sizeof(o));
            for (int64_t b = 0; b < blocks; b++) {
                const float *p = part + (h * blocks + b) * row;
                float w = expf(p[group * dim + g] - mx);
                z += w * p[group * dim + group + g];
                for (int64_t d = 0; d < dim; d++) o[d] += w * p[g * dim + d];
            }
            uint16_t *dst = out + (h * group + g) * dim;
            for (int64_t d = 0; d < dim; d++) dst[d] = to_bf16(o[d] / z);
        }
    }
    free(part);
    return 0;
}

#else /* no AVX-512: nothing to offer over SDPA */
int chatapp_decode_attention_isa(void) { return 0; }
int chatapp_decode_attention(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                             uint16_t *out, int64_t kv_heads, int64_t group, int64_t dim,
                             int64_t T, int64_t k_head_stride, int64_t v_head_stride, float scale,
                             int threads) {
    (void)q, (void)k, (void)v, (void)out, (void)kv_heads, (void)group, (void)dim, (void)T;
    (void)k_head_stride, (void)v_head_stride, (void)scale, (void)threads;
    return -1;
}
#endif
