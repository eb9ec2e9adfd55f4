/* Attention of one new token over a bfloat16 KV cache, for CPUs with AVX-512.
 *
 * torch's CPU SDPA runs this shape (a few query rows against thousands of keys) at ~5 GB/s:
 * its flash kernel makes two small GEMM calls per 512-key block per head. Here each key and
 * value row is read once, for all the query heads that share it, with float32 accumulation
 * (bfloat16 products are exact in float32), a float32 softmax and one rounding of the output.
 * Long contexts are split into blocks of keys, spread over torch's own OpenMP team and merged
 * by their softmax maxima and sums (flash-decoding).
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
#define PREFETCH 8    /* rows ahead */

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
#if defined(__AVX512BF16__)
            for (; d + 32 <= dim; d += 32)
                a = _mm512_dpbf16_ps(a, (__m512bh)_mm512_loadu_si512(qg + d),
                                     (__m512bh)_mm512_loadu_si512(kt + d));
#endif
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

static void block_dispatch(const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t n,
                           int64_t group, int64_t dim, float scale, float *acc, float *m,
                           float *z) {
    switch (dim) { /* constant head sizes let the compiler keep the accumulators in registers */
    case 64: block_attention(q, k, v, n, group, 64, scale, acc, m, z); break;
    case 128: block_attention(q, k, v, n, group, 128, scale, acc, m, z); break;
    case 256: block_attention(q, k, v, n, group, 256, scale, acc, m, z); break;
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
