/* One decode step (one new token) through every transformer block, in one call.
 *
 * A decode step of a small model is mostly overhead: each block is some 15 torch operations
 * and Python calls of a few microseconds each (SmolLM2-135M, 30 blocks: 12 of its 29 ms a token
 * on a 2-core Xeon, against 17 for the products). Where every projection of every block is in
 * GGML blocks (csrc/ggml_matmul.c) and the block is of the common kind (RMSNorm, RoPE over
 * whole heads, grouped-query attention, a gated MLP), engine/fused_decode.py hands the whole
 * step to this function: the same operations in the same order, each rounded to bfloat16
 * where torch's bfloat16 path rounds it, with the same product and attention kernels.
 *
 * Built at run time by engine/native.py with the other kernels (same library).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int chatapp_ggml_matmul(int type, const uint8_t *w, int64_t rows, int64_t cols,
                        const uint16_t *x, int64_t ldx, int64_t n, uint16_t *y, int64_t ldy,
                        int threads);
int chatapp_decode_attention(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                             uint16_t *out, int64_t kv_heads, int64_t group, int64_t dim,
                             int64_t T, int64_t k_head_stride, int64_t v_head_stride, float scale,
                             int threads);

#define MAX_PARTS 3

typedef struct { /* a projection: its row blocks side by side (fused q/k/v, gate/up) */
    int32_t parts;
    int32_t type[MAX_PARTS];
    const uint8_t *w[MAX_PARTS];
    int64_t rows[MAX_PARTS];
    const uint16_t *bias; /* bfloat16 [all rows] or NULL */
} chatapp_proj;

typedef struct {
    const uint16_t *attn_norm, *mlp_norm;           /* bfloat16 [hidden] */
    const uint16_t *post_attn_norm, *post_mlp_norm; /* Gemma's sandwich norms, or NULL */
    const uint16_t *q_norm, *k_norm;                /* [head_dim] each, or NULL */
    chatapp_proj qkv, o, gate_up, down;
    int64_t window;     /* a sliding layer's window, 0 for none */
    int32_t local_rope; /* takes the local cos/sin tables */
} chatapp_layer;

typedef struct {
    int64_t hidden, heads, kv_heads, head_dim, inter;
    float eps, scale;
    int32_t act; /* 0: SiLU, 1: GELU (tanh) */
    int32_t layers;
    const chatapp_layer *layer;
} chatapp_stack;

static inline float bf(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t to_bf(float f) { /* round to nearest even, NaN kept */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* out = x / rms(x) * w, in float32 and rounded once (engine.model.RMSNorm's LayerNorm) */
static void rms_norm(const uint16_t *x, const uint16_t *w, int64_t d, float eps, uint16_t *out) {
    float ss = 0.f;
    for (int64_t i = 0; i < d; i++) ss += bf(x[i]) * bf(x[i]);
    const float r = 1.f / sqrtf(ss / (float)d + eps);
    for (int64_t i = 0; i < d; i++) out[i] = to_bf(bf(x[i]) * r * bf(w[i]));
}

static int project(const chatapp_proj *p, const uint16_t *x, int64_t cols, uint16_t *y,
                   int threads) {
    int64_t at = 0;
    for (int i = 0; i < p->parts; i++) {
        if (chatapp_ggml_matmul(p->type[i], p->w[i], p->rows[i], cols, x, cols, 1, y + at,
                                p->rows[i], threads))
            return -1;
        at += p->rows[i];
    }
    if (p->bias)
        for (int64_t j = 0; j < at; j++) y[j] = to_bf(bf(y[j]) + bf(p->bias[j]));
    return 0;
}

/* x * cos + roll(x, dim / 2) * sin (sin's first half negated), as engine.model.apply_rope
 * rounds it: the product x * cos to bfloat16, then the fused multiply-add. */
static void rope(uint16_t *x, const uint16_t *cos, const uint16_t *sin, int64_t dim) {
    uint16_t t[256];
    memcpy(t, x, (size_t)dim * 2);
    const int64_t half = dim / 2;
    for (int64_t i = 0; i < dim; i++) {
        const float rolled = bf(t[(i + half) % dim]);
        x[i] = to_bf(bf(to_bf(bf(t[i]) * bf(cos[i]))) + rolled * bf(sin[i]));
    }
}

static inline float activation(int act, float g) {
    if (act == 0) return g / (1.f + expf(-g));
    const float c = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * g * (1.f + tanhf(c * (g + 0.044715f * g * g * g)));
}

/* x: the token's hidden state (bfloat16 [hidden]), updated in place through every block.
 * k/v: the cache, element (layer, head, t, d) at layer * layer_stride + head * head_stride +
 * t * head_dim + d; the token's keys and values are written at position pos. cos/sin: the
 * position's rows of the RoPE tables (local_*: the sliding layers' own, or the same).
 * Returns 0, or -1 if a kernel refused its input (x is then as it was: the caller takes the
 * torch path, which writes the same cache positions again). */
int chatapp_decode_layers(const chatapp_stack *s, uint16_t *x, uint16_t *k, uint16_t *v,
                          int64_t layer_stride, int64_t head_stride, int64_t pos,
                          const uint16_t *cos, const uint16_t *sin, const uint16_t *local_cos,
                          const uint16_t *local_sin, int threads) {
    const int64_t H = s->heads, KV = s->kv_heads, D = s->head_dim, hid = s->hidden;
    if (D > 256 || D % 2) return -1;
    const int64_t qkv_n = (H + 2 * KV) * D, wide = s->inter * 2 > qkv_n ? s->inter * 2 : qkv_n;
    uint16_t *buf = malloc((size_t)(3 * hid + wide + H * D + s->inter) * 2);
    if (!buf) return -1;
    uint16_t *h = buf, *o = buf + hid, *big = buf + 2 * hid, *att = big + wide;
    uint16_t *act = att + H * D, *saved = act + s->inter;
    memcpy(saved, x, (size_t)hid * 2);
    int status = 0;
    for (int32_t l = 0; l < s->layers && status == 0; l++) {
        const chatapp_layer *L = &s->layer[l];
        /* attention */
        rms_norm(x, L->attn_norm, hid, s->eps, h);
        if ((status = project(&L->qkv, h, hid, big, threads))) break;
        uint16_t *q = big, *kn = big + H * D, *vn = big + (H + KV) * D;
        if (L->q_norm)
            for (int64_t i = 0; i < H; i++) rms_norm(q + i * D, L->q_norm, D, s->eps, q + i * D);
        if (L->k_norm)
            for (int64_t i = 0; i < KV; i++) rms_norm(kn + i * D, L->k_norm, D, s->eps, kn + i * D);
        const uint16_t *c = L->local_rope ? local_cos : cos, *sn = L->local_rope ? local_sin : sin;
        if (c) {
            for (int64_t i = 0; i < H + KV; i++) rope(q + i * D, c, sn, D);
        }
        uint16_t *kl = k + l * layer_stride, *vl = v + l * layer_stride;
        for (int64_t i = 0; i < KV; i++) {
            memcpy(kl + i * head_stride + pos * D, kn + i * D, (size_t)D * 2);
            memcpy(vl + i * head_stride + pos * D, vn + i * D, (size_t)D * 2);
        }
        int64_t first = 0, T = pos + 1;
        if (L->window > 0 && T > L->window) first = T - L->window;
        if ((status = chatapp_decode_attention(q, kl + first * D, vl + first * D, att, KV, H / KV,
                                               D, T - first, head_stride, head_stride, s->scale,
                                               threads)))
            break;
        if ((status = project(&L->o, att, H * D, o, threads))) break;
        if (L->post_attn_norm) rms_norm(o, L->post_attn_norm, hid, s->eps, o);
        for (int64_t i = 0; i < hid; i++) x[i] = to_bf(bf(x[i]) + bf(o[i]));
        /* MLP */
        rms_norm(x, L->mlp_norm, hid, s->eps, h);
        if ((status = project(&L->gate_up, h, hid, big, threads))) break;
        for (int64_t i = 0; i < s->inter; i++)
            act[i] = to_bf(bf(to_bf(activation(s->act, bf(big[i])))) * bf(big[s->inter + i]));
        if ((status = project(&L->down, act, s->inter, o, threads))) break;
        if (L->post_mlp_norm) rms_norm(o, L->post_mlp_norm, hid, s->eps, o);
        for (int64_t i = 0; i < hid; i++) x[i] = to_bf(bf(x[i]) + bf(o[i]));
    }
    if (status) memcpy(x, saved, (size_t)hid * 2);
    free(buf);
    return status ? -1 : 0;
}
