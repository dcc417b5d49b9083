/* One decoding step of the static loop's grid for a small Llama, in plain C (issue 28): the forward
 * (ttc_grid_step) and, in ttc_decode_step, the token, EOS and bookkeeping of every row; and the
 * prompt prefill (ttc_prefill).
 *
 * Computes what ttc_gym.engines.llama_forward.LlamaWeights.step computes for a fused (small) model:
 * RMSNorm, fused q|k|v, rotary embedding (rotate_half), grouped-query attention over the row's
 * group's prompt keys/values and the row's own keys/values 0..t, o-projection, SiLU MLP with fused
 * gate|up, final RMSNorm and LM head; it writes each live row's key/value at own position t and its
 * float32 logits. Rows are groups x n, group-major (row r belongs to group r / n). Rows whose `live`
 * flag is 0 are skipped (their logits are set to 0, their own keys/values left as they are).
 *
 * Layouts (all float32, C-contiguous), as ttc_gym.engines.static_decoding lays them out:
 *   weights [in, out] (pre-transposed), LM head [hidden, vocab], embedding [vocab, hidden],
 *   cos/sin [positions, head_dim];
 *   prompt_kv [layers, 2, groups, kv_heads, p_max, head_dim] (group g holds prompt_len[g] positions;
 *             only its values are read) and prompt_kt [layers, groups, kv_heads, head_dim, p_max],
 *             its keys transposed (so that a row's prompt scores are head_dim axpys over positions);
 *   own_kv    [layers, 2, rows, kv_heads, capacity, head_dim].
 *
 * Why C: at the micro-reasoner's size a step's arithmetic takes microseconds, and an eager torch
 * step spends ~95 % of its time in per-op framework work. Each operation runs over all live rows
 * before the next (a weight matrix stays hot in the caches); matrix products are blocked by rows
 * (ROW_BLOCK rows share each weight read) and by output columns (OUT_TILE accumulators that stay in
 * registers). exp is a vectorizable polynomial (exp_approx, ~2e-7 relative). Single-threaded; no
 * BLAS; IEEE arithmetic (no -ffast-math), so results differ from torch's by float rounding only.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef ROW_BLOCK
#define ROW_BLOCK 4
#endif
#if ROW_BLOCK > 8
#error "ROW_BLOCK is at most 8"
#endif
#ifndef OUT_TILE
#define OUT_TILE 64
#endif
#define LANES 8

typedef struct {
  int hidden, heads, kv_heads, head_dim, inter, layers, vocab, positions;
  float eps, scale;
  const float* embed;
  const float* norm;
  const float* head;
  const float* cos_t;
  const float* sin_t;
  const float* const* norm1;
  const float* const* qkv;
  const float* const* o;
  const float* const* norm2;
  const float* const* gate_up;
  const float* const* down;
} model_t;

static void rms_norm(const float* x, const float* w, float* out, int n, float eps) {
  float s = 0.f;
  for (int i = 0; i < n; i++) s += x[i] * x[i];
  const float r = 1.f / sqrtf(s / (float)n + eps);
  for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

/* One OUT_TILE-wide column tile of y[r, :] (+)= x[r, :] W for r < NR. Inlined with NR a constant
 * (block_matmul's switch), so the accumulators can live in registers. */
static inline __attribute__((always_inline)) void tile(const float* x, const int NR, const float* W, int in,
                                                       int out, int o0, float* y, int accumulate) {
  float acc[ROW_BLOCK][OUT_TILE];
  for (int r = 0; r < NR; r++)
    for (int c = 0; c < OUT_TILE; c++) acc[r][c] = accumulate ? y[(long)r * out + o0 + c] : 0.f;
  for (int i = 0; i < in; i++) {
    const float* w = W + (long)i * out + o0;
    for (int r = 0; r < NR; r++) {
      const float xv = x[(long)r * in + i];
      for (int c = 0; c < OUT_TILE; c++) acc[r][c] += xv * w[c];
    }
  }
  for (int r = 0; r < NR; r++)
    for (int c = 0; c < OUT_TILE; c++) y[(long)r * out + o0 + c] = acc[r][c];
}

/* y[r, :] (+)= x[r, :] W for r < nr <= ROW_BLOCK; W [in, out] row-major; x rows `in` apart, y rows
 * `out` apart. */
static void block_matmul(const float* x, int nr, const float* W, int in, int out, float* y, int accumulate) {
  int o0 = 0;
  for (; o0 + OUT_TILE <= out; o0 += OUT_TILE) {
    switch (nr) {
#define TILE_CASE(k) case k: tile(x, k, W, in, out, o0, y, accumulate); break;
      TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
#if ROW_BLOCK > 4
      TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
#endif
#undef TILE_CASE
      default: break;
    }
  }
  if (o0 < out) {  /* the last, narrower columns */
    for (int r = 0; r < nr; r++) {
      float* yr = y + (long)r * out;
      if (!accumulate) memset(yr + o0, 0, sizeof(float) * (out - o0));
      for (int i = 0; i < in; i++) {
        const float xv = x[(long)r * in + i];
        const float* w = W + (long)i * out;
        for (int c = o0; c < out; c++) yr[c] += xv * w[c];
      }
    }
  }
}

/* sum a[j] b[j]: LANES independent partial sums (a plain sum is one dependency chain, which the
 * compiler may not reorder without -ffast-math). */
static float dot(const float* a, const float* b, int n) {
  float lanes[LANES] = {0};
  int j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int u = 0; u < LANES; u++) lanes[u] += a[j + u] * b[j + u];
  float total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (; j < n; j++) total += a[j] * b[j];
  return total;
}

/* e^x for x <= 88.7 (below -87.3: ~1e-38), relative error ~2e-7: Cephes' expf (range reduction
 * by n ln 2 with ln 2 split in two, a degree-6 polynomial, 2^n built from its exponent bits). Pure
 * arithmetic, so the compiler vectorizes the loops that call it (libm's expf is a scalar call). */
static inline float exp_approx(float x) {
  x = x > 88.7f ? 88.7f : (x < -87.3f ? -87.3f : x);
  /* round to nearest by the 1.5 x 2^23 trick (|x log2 e| < 2^22 here): floorf would not vectorize */
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

static void rotate(float* v, const float* c, const float* s, int dim) {
  const int h = dim / 2;
  for (int j = 0; j < h; j++) {
    const float a = v[j], b = v[j + h];
    v[j] = a * c[j] - b * s[j];
    v[j + h] = b * c[j + h] + a * s[j + h];
  }
}

/* out[:HD] = inv x (sum_p w[p] V1[p] over the prompt's positions + sum_p w[plen + p] V2[p] over the
 * row's own), V rows HD apart. */
static inline __attribute__((always_inline)) void weighted_sum(const float* w, float inv, const float* V1, int plen,
                                                               const float* V2, int own, const int HD, float* out) {
  float acc[128];
  const int width = HD <= 128 ? HD : 128;
  for (int c0 = 0; c0 < HD; c0 += width) {
    const int cw = HD - c0 < width ? HD - c0 : width;
    for (int j = 0; j < cw; j++) acc[j] = 0.f;
    for (int p = 0; p < plen; p++) {
      const float* v = V1 + (long)p * HD + c0;
      for (int j = 0; j < cw; j++) acc[j] += w[p] * v[j];
    }
    for (int p = 0; p < own; p++) {
      const float* v = V2 + (long)p * HD + c0;
      for (int j = 0; j < cw; j++) acc[j] += w[plen + p] * v[j];
    }
    for (int j = 0; j < cw; j++) out[c0 + j] = acc[j] * inv;
  }
}

/* Attention of one row at one layer: q [heads, head_dim] (rotated) -> out [heads, head_dim]. */
static void attend(const model_t* m, const float* q, const float* pkt, const float* pv, int plen, int p_max,
                   const float* ok, const float* ov, int own, int capacity, float* scores, float* out) {
  const int HD = m->head_dim, rep = m->heads / m->kv_heads;
  for (int h = 0; h < m->heads; h++) {
    const int k = h / rep;
    const float* qh = q + (long)h * HD;
    const float* K1t = pkt + (long)k * HD * p_max;  /* [head_dim, p_max]: scores are axpys over positions */
    const float* V1 = pv + (long)k * p_max * HD;
    const float* K2 = ok + (long)k * capacity * HD;
    const float* V2 = ov + (long)k * capacity * HD;
    memset(scores, 0, sizeof(float) * plen);
    for (int j = 0; j < HD; j++) {
      const float qj = qh[j] * m->scale;
      const float* kj = K1t + (long)j * p_max;
      for (int p = 0; p < plen; p++) scores[p] += qj * kj[p];
    }
    for (int p = 0; p < own; p++) scores[plen + p] = dot(qh, K2 + (long)p * HD, HD) * m->scale;
    float top = -INFINITY;
    for (int p = 0; p < plen + own; p++) top = scores[p] > top ? scores[p] : top;
    for (int p = 0; p < plen + own; p++) scores[p] = exp_approx(scores[p] - top);
    float total = 0.f;
    for (int p = 0; p < plen + own; p++) total += scores[p];
    const float inv = 1.f / total;
    float* oh = out + (long)h * HD;
    switch (HD) {  /* a constant width keeps the accumulators in registers */
      case 32: weighted_sum(scores, inv, V1, plen, V2, own, 32, oh); break;
      case 64: weighted_sum(scores, inv, V1, plen, V2, own, 64, oh); break;
      case 128: weighted_sum(scores, inv, V1, plen, V2, own, 128, oh); break;
      default: weighted_sum(scores, inv, V1, plen, V2, own, HD, oh); break;
    }
  }
}

static int max4(int a, int b, int c, int d) {
  int m = a > b ? a : b;
  m = m > c ? m : c;
  return m > d ? m : d;
}

/* Scratch floats per row (token) of the forward: residual stream x, matrix-product input and output
 * rows, attention output (the layout ttc_grid_step and ttc_prefill carve out of their scratch). */
static long row_floats(const model_t* m) {
  const int qs = m->heads * m->head_dim, width = qs + 2 * m->kv_heads * m->head_dim;
  return m->hidden + max4(m->hidden, qs, m->inter, 0) + max4(width, 2 * m->inter, m->hidden, 0) + qs;
}

/* Floats of scratch memory ttc_grid_step needs for `rows` rows (the caller allocates them). */
long ttc_scratch_floats(const model_t* m, int rows, int p_max, int capacity) {
  return (long)rows * row_floats(m) + (long)ROW_BLOCK * m->vocab + p_max + capacity + m->vocab + rows;
}

/* y (+)= x W for nr rows, ROW_BLOCK rows at a time (x rows `in` apart, y rows `out` apart). Every
 * operation runs over all rows before the next starts, so a weight matrix is read from the caches
 * once per block of rows while it is still hot. */
static void rows_matmul(const float* x, int nr, const float* W, int in, int out, float* y, int accumulate) {
  for (int b0 = 0; b0 < nr; b0 += ROW_BLOCK)
    block_matmul(x + (long)b0 * in, nr - b0 < ROW_BLOCK ? nr - b0 : ROW_BLOCK, W, in, out, y + (long)b0 * out,
                 accumulate);
}

/* The rest of layer l after attention, for nr rows: x += att o; x += down(silu(gate) * up) of
 * norm2(x). in and out are scratch rows (at least max(D, FF) and max(D, 2 FF) floats each). */
static void out_and_mlp(const model_t* m, int l, const float* att, int nr, float* x, float* in, float* out) {
  const int D = m->hidden, FF = m->inter, qs = m->heads * m->head_dim;
  rows_matmul(att, nr, m->o[l], qs, D, x, 1);
  for (int b = 0; b < nr; b++) rms_norm(x + (long)b * D, m->norm2[l], in + (long)b * D, D, m->eps);
  rows_matmul(in, nr, m->gate_up[l], D, 2 * FF, out, 0);
  for (int b = 0; b < nr; b++) {
    const float* gu = out + (long)b * 2 * FF;
    float* act = in + (long)b * FF;
    for (int i = 0; i < FF; i++) act[i] = gu[i] / (1.f + exp_approx(-gu[i])) * gu[FF + i];
  }
  rows_matmul(in, nr, m->down[l], FF, D, x, 1);
}

/* The step (see the top of this file). scratch: ttc_scratch_floats(m, groups * n, p_max, capacity) floats. */
void ttc_grid_step(const model_t* m, int groups, int n, int p_max, const int32_t* prompt_len, const float* prompt_kv,
                   const float* prompt_kt, float* own_kv, int capacity, int t, const int64_t* ids, const int64_t* pos,
                   const uint8_t* live, float* logits, float* scratch) {
  const int D = m->hidden, HD = m->head_dim, KV = m->kv_heads, FF = m->inter, V = m->vocab;
  const int qs = m->heads * HD, ks = KV * HD, width = qs + 2 * ks;
  const int rows = groups * n;
  int32_t* order = (int32_t*)(scratch + ttc_scratch_floats(m, rows, p_max, capacity) - rows);  /* live rows */
  int nl = 0;
  for (int r = 0; r < rows; r++) {
    if (live[r]) order[nl++] = r;
    else memset(logits + (long)r * V, 0, sizeof(float) * V);
  }
  if (nl == 0) return;
  float* x = scratch;                                        /* [nl, D] residual stream */
  float* in = x + (long)rows * D;                            /* [nl, <= max(D, qs, FF)] */
  float* out = in + (long)rows * max4(D, qs, FF, 0);         /* [nl, <= max(width, 2 FF, D)] */
  float* att = out + (long)rows * max4(width, 2 * FF, D, 0); /* [nl, qs] */
  float* head_out = att + (long)rows * qs;                   /* [ROW_BLOCK, V] */
  float* scores = head_out + (long)ROW_BLOCK * V;            /* [p_max + capacity] */
  for (int b = 0; b < nl; b++) memcpy(x + (long)b * D, m->embed + ids[order[b]] * D, sizeof(float) * D);
  for (int l = 0; l < m->layers; l++) {
    for (int b = 0; b < nl; b++) rms_norm(x + (long)b * D, m->norm1[l], in + (long)b * D, D, m->eps);
    rows_matmul(in, nl, m->qkv[l], D, width, out, 0);
    for (int b = 0; b < nl; b++) {
      const int row = order[b], g = row / n;
      float* q = out + (long)b * width;  /* q | k | v of this row */
      const float* c = m->cos_t + pos[row] * HD;
      const float* s = m->sin_t + pos[row] * HD;
      for (int hh = 0; hh < m->heads + KV; hh++) rotate(q + (long)hh * HD, c, s, HD);
      float* ok = own_kv + (((long)l * 2 + 0) * rows + row) * KV * capacity * HD;
      float* ov = own_kv + (((long)l * 2 + 1) * rows + row) * KV * capacity * HD;
      for (int k = 0; k < KV; k++) {
        memcpy(ok + ((long)k * capacity + t) * HD, q + qs + (long)k * HD, sizeof(float) * HD);
        memcpy(ov + ((long)k * capacity + t) * HD, q + qs + ks + (long)k * HD, sizeof(float) * HD);
      }
      const float* pkt = prompt_kt + ((long)l * groups + g) * KV * HD * p_max;
      const float* pv = prompt_kv + (((long)l * 2 + 1) * groups + g) * KV * p_max * HD;
      attend(m, q, pkt, pv, prompt_len[g], p_max, ok, ov, t + 1, capacity, scores, att + (long)b * qs);
    }
    out_and_mlp(m, l, att, nl, x, in, out);
  }
  for (int b = 0; b < nl; b++) rms_norm(x + (long)b * D, m->norm, in + (long)b * D, D, m->eps);
  for (int b0 = 0; b0 < nl; b0 += ROW_BLOCK) {
    const int nb = nl - b0 < ROW_BLOCK ? nl - b0 : ROW_BLOCK;
    block_matmul(in + (long)b0 * D, nb, m->head, D, V, head_out, 0);
    for (int b = 0; b < nb; b++) memcpy(logits + (long)order[b0 + b] * V, head_out + (long)b * V, sizeof(float) * V);
  }
}

/* Floats of scratch memory ttc_prefill needs for `tokens` tokens. */
long ttc_prefill_scratch_floats(const model_t* m, int tokens, int p_max) {
  return (long)tokens * row_floats(m) + p_max;
}

/* Attention of one prompt token at one layer over its group's positions 0..last (keys and values
 * [kv_heads, p_max, head_dim] of the group at this layer, already holding this token's own). */
static void attend_prompt(const model_t* m, const float* q, const float* pk, const float* pv, int last, int p_max,
                          float* scores, float* out) {
  const int HD = m->head_dim, rep = m->heads / m->kv_heads;
  for (int h = 0; h < m->heads; h++) {
    const int k = h / rep;
    const float* qh = q + (long)h * HD;
    const float* K = pk + (long)k * p_max * HD;
    const float* V = pv + (long)k * p_max * HD;
    for (int p = 0; p <= last; p++) scores[p] = dot(qh, K + (long)p * HD, HD) * m->scale;
    float top = -INFINITY;
    for (int p = 0; p <= last; p++) top = scores[p] > top ? scores[p] : top;
    for (int p = 0; p <= last; p++) scores[p] = exp_approx(scores[p] - top);
    float total = 0.f;
    for (int p = 0; p <= last; p++) total += scores[p];
    float* oh = out + (long)h * HD;
    switch (HD) {
      case 32: weighted_sum(scores, 1.f / total, V, last + 1, V, 0, 32, oh); break;
      case 64: weighted_sum(scores, 1.f / total, V, last + 1, V, 0, 64, oh); break;
      case 128: weighted_sum(scores, 1.f / total, V, last + 1, V, 0, 128, oh); break;
      default: weighted_sum(scores, 1.f / total, V, last + 1, V, 0, HD, oh); break;
    }
  }
}

/* Encode prompt tokens (what LlamaWeights.prefill computes): token i (id ids[i]) sits at position
 * pos[i] of group group_of[i]; its key and value are written to prompt_kv [layers, 2, groups,
 * kv_heads, p_max, head_dim] there, and it attends to its group's positions 0..pos[i] (the earlier
 * ones already in prompt_kv, or among these tokens). No logits (so the last layer stops at its keys
 * and values). scratch:
 * ttc_prefill_scratch_floats(m, tokens, p_max) floats. */
void ttc_prefill(const model_t* m, int groups, int p_max, float* prompt_kv, int tokens, const int64_t* ids,
                 const int64_t* pos, const int32_t* group_of, float* scratch) {
  const int D = m->hidden, HD = m->head_dim, KV = m->kv_heads, FF = m->inter;
  const int qs = m->heads * HD, ks = KV * HD, width = qs + 2 * ks;
  float* x = scratch;                                          /* [tokens, D] */
  float* in = x + (long)tokens * D;                            /* [tokens, <= max(D, qs, FF)] */
  float* out = in + (long)tokens * max4(D, qs, FF, 0);         /* [tokens, <= max(width, 2 FF, D)] */
  float* att = out + (long)tokens * max4(width, 2 * FF, D, 0); /* [tokens, qs] */
  float* scores = att + (long)tokens * qs;                     /* [p_max] */
  for (int i = 0; i < tokens; i++) memcpy(x + (long)i * D, m->embed + ids[i] * D, sizeof(float) * D);
  for (int l = 0; l < m->layers; l++) {
    for (int i = 0; i < tokens; i++) rms_norm(x + (long)i * D, m->norm1[l], in + (long)i * D, D, m->eps);
    rows_matmul(in, tokens, m->qkv[l], D, width, out, 0);
    for (int i = 0; i < tokens; i++) {  /* every token's key and value first: later tokens attend to them */
      float* q = out + (long)i * width;
      const float* c = m->cos_t + pos[i] * HD;
      const float* s = m->sin_t + pos[i] * HD;
      for (int hh = 0; hh < m->heads + KV; hh++) rotate(q + (long)hh * HD, c, s, HD);
      float* pk = prompt_kv + (((long)l * 2 + 0) * groups + group_of[i]) * KV * p_max * HD;
      float* pv = prompt_kv + (((long)l * 2 + 1) * groups + group_of[i]) * KV * p_max * HD;
      for (int k = 0; k < KV; k++) {
        memcpy(pk + ((long)k * p_max + pos[i]) * HD, q + qs + (long)k * HD, sizeof(float) * HD);
        memcpy(pv + ((long)k * p_max + pos[i]) * HD, q + qs + ks + (long)k * HD, sizeof(float) * HD);
      }
    }
    if (l == m->layers - 1) break;  /* the last layer's keys and values are all a prompt leaves */
    for (int i = 0; i < tokens; i++) {
      const float* pk = prompt_kv + (((long)l * 2 + 0) * groups + group_of[i]) * KV * p_max * HD;
      const float* pv = prompt_kv + (((long)l * 2 + 1) * groups + group_of[i]) * KV * p_max * HD;
      attend_prompt(m, out + (long)i * width, pk, pv, (int)pos[i], p_max, scores, att + (long)i * qs);
    }
    out_and_mlp(m, l, att, tokens, x, in, out);
  }
}

/* The token of one row from its logits, as ttc_gym.engines.sampling.pick_tokens_v2 draws it without
 * nucleus filtering: the argmax (first of ties) when u < 0 (greedy), else the inverse-CDF draw with
 * uniform u from softmax(logits / temperature), the CDF summed in double. probs: vocab floats. */
static int64_t pick_token(const float* logits, int V, double u, float temperature, float* probs) {
  int best = 0;
  for (int i = 1; i < V; i++) best = logits[i] > logits[best] ? i : best;
  if (u < 0.) return best;
  const float top = logits[best] / temperature;
  float total = 0.f;
  for (int i = 0; i < V; i++) probs[i] = exp_approx(logits[i] / temperature - top);
  for (int i = 0; i < V; i++) total += probs[i];
  const float inv = 1.f / total;
  double cum = 0., mass = 0.;
  for (int i = 0; i < V; i++) mass += (double)(probs[i] * inv);
  const double target = u * mass;
  int64_t last = 0;  /* the last token with any mass (rounding at the very top stops there) */
  for (int i = 0; i < V; i++) {
    const double p = (double)(probs[i] * inv);
    if (p > 0.) last = i;
    cum += p;
    if (cum > target) return i;
  }
  return last;
}

/* One step of the decode loop for every live row: the forward (ttc_grid_step), the token (pick_token
 * with the row's uniform uniforms[r * steps + t], or greedy when uniforms is NULL), written to
 * out[r * steps + t] and ids[r]; a row whose token is an end-of-sequence id (eos[token]) finishes
 * (live[r] = 0, ended[r] = t + 1); a row whose token could complete a stop string (cand[token]) is
 * listed in check (*n_check of them) for the caller's text check. Every row's position advances.
 * open_groups[g] = whether group g still has a live row. Returns the number of open groups. */
int ttc_decode_step(const model_t* m, int groups, int n, int p_max, const int32_t* prompt_len, const float* prompt_kv,
                    const float* prompt_kt, float* own_kv, int capacity, int t, int64_t* ids, int64_t* pos,
                    uint8_t* live, float* logits, float* scratch, const double* uniforms, int steps,
                    float temperature, const uint8_t* eos, const uint8_t* cand, int64_t* out, int64_t* ended,
                    int32_t* check, int32_t* n_check, uint8_t* open_groups) {
  ttc_grid_step(m, groups, n, p_max, prompt_len, prompt_kv, prompt_kt, own_kv, capacity, t, ids, pos, live, logits,
                scratch);
  const int rows = groups * n, V = m->vocab;
  float* probs = scratch;  /* the forward's scratch is free again (it holds >= vocab floats) */
  int count = 0, open = 0;
  for (int r = 0; r < rows; r++) {
    pos[r] += 1;
    if (!live[r]) {
      out[(long)r * steps + t] = 0;
      continue;
    }
    const int64_t token = pick_token(logits + (long)r * V, V, uniforms ? uniforms[(long)r * steps + t] : -1.,
                                     temperature, probs);
    out[(long)r * steps + t] = token;
    ids[r] = token;
    if (eos[token]) {
      live[r] = 0;
      ended[r] = t + 1;
    } else if (cand[token]) {
      check[count++] = r;
    }
  }
  *n_check = count;
  for (int g = 0; g < groups; g++) {
    uint8_t any = 0;
    for (int j = 0; j < n; j++) any |= live[g * n + j];
    open_groups[g] = any;
    open += any;
  }
  return open;
}
