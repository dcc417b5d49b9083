/* One decoding step of a small Llama (transformers' LlamaForCausalLM: RMSNorm, rotary embeddings
 * with rotate_half, grouped-query attention, SiLU MLP) for ONE row, in plain C: a probe of what the
 * per-token time of the micro-reasoner is without any framework between the ops (issue 28).
 * Not a decode path of ttc-gym: examples/benchmarks/micro_c_step.py compiles it, checks its logits
 * against the model's own forward and times it next to the engine's two loops.
 *
 * Weights as ttc_gym.engines.llama_forward.LlamaWeights lays them out for small models: [in, out]
 * (pre-transposed) fused q|k|v and gate|up, tied or untied LM head [hidden, vocab]; cos/sin tables
 * [positions, head_dim] from the model's own rotary embedding. Keys/values: [layers][kv_heads][T][head_dim].
 */
#include <math.h>
#include <string.h>

typedef struct { int hidden, heads, kv_heads, head_dim, inter, layers, vocab, capacity; float eps; } dims_t;

static void rms_norm(const float* x, const float* w, float* out, int n, float eps) {
  float s = 0.f;
  for (int i = 0; i < n; i++) s += x[i] * x[i];
  float r = 1.f / sqrtf(s / n + eps);
  for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

/* y (+)= x W for W [in, out], row-major: the inner loop runs over contiguous outputs (vectorizes). */
static void matvec(const float* x, const float* W, int in, int out, float* y, int accumulate) {
  if (!accumulate) memset(y, 0, sizeof(float) * out);
  for (int i = 0; i < in; i++) {
    const float xi = x[i];
    const float* row = W + (long)i * out;
    for (int o = 0; o < out; o++) y[o] += xi * row[o];
  }
}

static void rotate(float* v, const float* c, const float* s, int dim) {
  int h = dim / 2;
  for (int j = 0; j < h; j++) {
    float a = v[j], b = v[j + h];
    v[j] = a * c[j] - b * s[j];
    v[j + h] = b * c[j + h] + a * s[j + h];
  }
}

void llama_step(const dims_t* d, const float* embed, const float** norm1, const float** qkv, const float** o_proj,
                const float** norm2, const float** gate_up, const float** down, const float* norm,
                const float* head, const float* cos_t, const float* sin_t, int token, int pos,
                float* keys, float* values, float* logits) {
  const int D = d->hidden, H = d->heads, KV = d->kv_heads, HD = d->head_dim, FF = d->inter, T = d->capacity;
  const int qs = H * HD, ks = KV * HD, rep = H / KV;
  float x[D], h[D], q[qs + 2 * ks], att[qs], g[2 * FF], scores[pos + 1];
  memcpy(x, embed + (long)token * D, sizeof(float) * D);
  const float* c = cos_t + (long)pos * HD;
  const float* s = sin_t + (long)pos * HD;
  const float scale = 1.f / sqrtf((float)HD);
  for (int l = 0; l < d->layers; l++) {
    rms_norm(x, norm1[l], h, D, d->eps);
    matvec(h, qkv[l], D, qs + 2 * ks, q, 0);
    for (int k = 0; k < KV; k++) {  /* this position's key and value */
      float* kk = q + qs + k * HD;
      rotate(kk, c, s, HD);
      memcpy(keys + (((long)l * KV + k) * T + pos) * HD, kk, sizeof(float) * HD);
      memcpy(values + (((long)l * KV + k) * T + pos) * HD, q + qs + ks + k * HD, sizeof(float) * HD);
    }
    for (int hh = 0; hh < H; hh++) {
      float* qh = q + hh * HD;
      rotate(qh, c, s, HD);
      const float* K = keys + ((long)l * KV + hh / rep) * T * HD;
      const float* Vv = values + ((long)l * KV + hh / rep) * T * HD;
      float m = -INFINITY, z = 0.f;
      for (int t = 0; t <= pos; t++) {
        float dot = 0.f;
        for (int j = 0; j < HD; j++) dot += qh[j] * K[(long)t * HD + j];
        scores[t] = dot * scale;
        if (scores[t] > m) m = scores[t];
      }
      for (int t = 0; t <= pos; t++) { scores[t] = expf(scores[t] - m); z += scores[t]; }
      float* out = att + hh * HD;
      memset(out, 0, sizeof(float) * HD);
      for (int t = 0; t <= pos; t++) {
        const float p = scores[t] / z;
        for (int j = 0; j < HD; j++) out[j] += p * Vv[(long)t * HD + j];
      }
    }
    matvec(att, o_proj[l], qs, D, x, 1);
    rms_norm(x, norm2[l], h, D, d->eps);
    matvec(h, gate_up[l], D, 2 * FF, g, 0);
    for (int i = 0; i < FF; i++) g[i] = g[i] / (1.f + expf(-g[i])) * g[FF + i];
    matvec(g, down[l], FF, D, x, 1);
  }
  rms_norm(x, norm, h, D, d->eps);
  matvec(h, head, D, d->vocab, logits, 0);
}
