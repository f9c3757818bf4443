/* CPU decode kernels for engines/cpu_kernels.py (built there with -O3 -mavx2 -mfma -fopenmp).
 *
 * gemv_f32 / gemv_f32_multi: y = x @ w.T for a few rows of x, the batch-1..8 fp32 decode
 * matmul at memory bandwidth. x (M, K), w (N, K) row-major (an nn.Linear weight), y (M, N);
 * K a multiple of 8. Rows of w are split across threads (OpenMP, the runtime torch already
 * loaded), each row is read from memory once however many rows x has, and every output
 * element is summed in the same order whatever M is: a row of a batch gets bit-for-bit the
 * numbers it gets alone.
 * gemv_q8_multi: the same over int8 weights with an fp32 scale a row.
 * gemv_q4_multi: the same over int4 weights, two a byte, with an fp32 scale and zero for each
 * group of 32 input columns (up to 64 rows of x: dequantizing for torch's GEMM costs more).
 * rms_norm_f32, rope_f32, attend_f32: the small ops of a Llama decode step, one call each.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>

static inline float hsum(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

/* one row of w against one row of x: four accumulators over k mod 32, then their sum */
static inline float dot(const float *x, const float *w, long K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k < K; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* one row of w against two rows of x (x and x + K), each summed exactly as dot() sums it */
static inline void dot2(const float *x, const float *w, long K, float *y0, float *y1) {
    const float *x1 = x + K;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    long k = 0;
    for (; k + 32 <= K; k += 32) {
        __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + k + 8);
        __m256 w2 = _mm256_loadu_ps(w + k + 16), w3 = _mm256_loadu_ps(w + k + 24);
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + k + 24), a3);
        b0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + k), b0);
        b1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + k + 8), b1);
        b2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x1 + k + 16), b2);
        b3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x1 + k + 24), b3);
    }
    for (; k < K; k += 8) {
        __m256 wv = _mm256_loadu_ps(w + k);
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k), a0);
        b0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k), b0);
    }
    *y0 = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    *y1 = hsum(_mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3)));
}

/* row n of w against every row of x: the row comes from memory once, then from L1 */
static inline void row(const float *x, const float *w, float *y, long M, long N, long K) {
    long m = 0;
    for (; m + 1 < M; m += 2) dot2(x + m * K, w, K, y + m * N, y + (m + 1) * N);
    if (m < M) y[m * N] = dot(x + m * K, w, K);
}

/* y_j = x @ w_j.T for up to 4 weights of the same input width (q, k and v; gate and up): their
 * rows are one work list, so the threads fork and join once for all of them. Each thread takes
 * a contiguous run of rows: one sequential stream through memory. */
void gemv_f32_multi(const float *x, long M, long K, int count, const float **ws, float **ys,
                    const long *Ns, int threads) {
    long first[5] = {0};
    for (int j = 0; j < count; j++) first[j + 1] = first[j] + Ns[j];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < first[count]; i++) {
        int j = 0;
        while (i >= first[j + 1]) j++;
        long n = i - first[j];
        row(x, ws[j] + n * K, ys[j] + n, M, Ns[j], K);
    }
}

void gemv_f32(const float *x, const float *w, float *y, long M, long N, long K, int threads) {
    gemv_f32_multi(x, M, K, 1, &w, &y, &N, threads);
}

/* y = x / sqrt(mean(x^2) + eps) * w, row by row (RMSNorm; M rows of K) */
void rms_norm_f32(const float *x, const float *w, float *y, long M, long K, float eps) {
    for (long m = 0; m < M; m++) {
        const float *xm = x + m * K;
        double ss = 0;
        for (long k = 0; k < K; k++) ss += (double)xm[k] * xm[k];
        float r = 1.0f / sqrtf((float)(ss / K) + eps);
        for (long k = 0; k < K; k++) y[m * K + k] = xm[k] * r * w[k];
    }
}

/* rotary embedding in place on x (B rows of H heads of d), transformers' Llama convention:
 * x[:h] * cos - x[h:] * sin, x[h:] * cos + x[:h] * sin with h = d / 2; cos, sin (B, d) */
void rope_f32(float *x, const float *cos, const float *sin, long B, long H, long d) {
    long h = d / 2;
    for (long b = 0; b < B; b++)
        for (long i = 0; i < H; i++) {
            float *v = x + (b * H + i) * d;
            const float *c = cos + b * d, *s = sin + b * d;
            for (long k = 0; k < h; k++) {
                float a = v[k], z = v[k + h];
                v[k] = a * c[k] - z * s[k];
                v[k + h] = z * c[k + h] + a * s[k + h];
            }
        }
}

/* ---- int8 weight-only: w[n, k] = q[n, k] * scale[n], x and y fp32 ---- */

static inline __m256 widen8(const signed char *q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

/* one int8 row against one row of x, the same four-accumulator order as dot() */
static inline float dot_q8(const float *x, const signed char *q, long K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long k = 0;
    for (; k + 32 <= K; k += 32) {
        a0 = _mm256_fmadd_ps(widen8(q + k), _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(widen8(q + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        a2 = _mm256_fmadd_ps(widen8(q + k + 16), _mm256_loadu_ps(x + k + 16), a2);
        a3 = _mm256_fmadd_ps(widen8(q + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k < K; k += 8) a0 = _mm256_fmadd_ps(widen8(q + k), _mm256_loadu_ps(x + k), a0);
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* Ask for a row of int8 weights Q8_AHEAD rows before it is needed, as int4 does (below): the
 * widening loop does enough work per byte that the hardware prefetcher falls behind. */
#define Q8_AHEAD 8
static inline void prefetch_q8(const signed char *q, long K) {
    for (long c = 0; c < K; c += 64) _mm_prefetch((const char *)(q + c), _MM_HINT_T0);
}

/* y_j = x @ (q_j * scale_j).T for up to 4 int8 weights of one input width */
void gemv_q8_multi(const float *x, long M, long K, int count, const signed char **qs,
                   const float **scales, float **ys, const long *Ns, int threads) {
    long first[5] = {0};
    for (int j = 0; j < count; j++) first[j + 1] = first[j] + Ns[j];
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < first[count]; i++) {
        int j = 0;
        while (i >= first[j + 1]) j++;
        long n = i - first[j], N = Ns[j];
        const signed char *q = qs[j] + n * K;
        float s = scales[j][n];
        if (n + Q8_AHEAD < N) prefetch_q8(q + Q8_AHEAD * K, K);
        for (long m = 0; m < M; m++) ys[j][m * N + n] = dot_q8(x + m * K, q, K) * s;
    }
}

/* ---- int4 weight-only: w[n, k] = q[n, k] * scale[n, g] + zero[n, g], g = k / 32 ----
 * q in 0..15, two a byte, 16 bytes a group of 32 columns: byte i of a group holds column
 * c = 16 (i / 8) + i % 8 in its low nibble and column c + 8 in its high nibble. scale and zero
 * are (N, K / 32) fp32, row-major. The sum is split as
 *     y = sum_g scale_g * (sum_{k in g} q_k x_k) + sum_g zero_g * (sum_{k in g} x_k)
 * so the loop over k multiplies small integers (exact in fp32) by x with one scale a group, and
 * the group sums of x are computed once a call for every row of w.
 *
 * Once its bytes are in cache the loop is bound by vector instructions (three a cycle), so it
 * saves them where it can (13 a group of 32 weights for one row of x, against 19 unpacking
 * nibbles in order): a byte widened to 32 bits is b = lo + 16 hi, and for columns a (low
 * nibble) and a + 8 (high)
 *     lo x_a + hi x_{a+8} = lo (x_a - x_{a+8} / 16) + b (x_{a+8} / 16)
 * which needs one mask (lo = b & 15) and no shift. x is rewritten that way once a call
 * (prepare_q4); the products differ from q x only by the rounding of those x's. */

/* x (M, K) → xt (M, K) as above, and xsum (M, K / 32): each group's sum of x */
static void prepare_q4(const float *x, long M, long K, float *xt, float *xsum) {
    for (long i = 0; i < M * K; i++)  /* i & 8: a high-nibble column (K is a multiple of 16) */
        xt[i] = (i & 8) ? x[i] * 0.0625f : x[i] - x[i + 8] * 0.0625f;
    for (long i = 0; i < M * K / 32; i++) {
        const float *xg = x + 32 * i;
        xsum[i] = hsum(_mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xg), _mm256_loadu_ps(xg + 8)),
                                     _mm256_add_ps(_mm256_loadu_ps(xg + 16), _mm256_loadu_ps(xg + 24))));
    }
}

/* one group's 16 bytes as four vectors of fp32 matching xt: lo of bytes 0-7, b of bytes 0-7,
 * lo of bytes 8-15, b of bytes 8-15 */
static inline void unpack_q4(const unsigned char *q, __m256 *w) {
    __m256i mask = _mm256_set1_epi32(15);
    __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)q));
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8)));
    w[0] = _mm256_cvtepi32_ps(_mm256_and_si256(a, mask));
    w[1] = _mm256_cvtepi32_ps(a);
    w[2] = _mm256_cvtepi32_ps(_mm256_and_si256(b, mask));
    w[3] = _mm256_cvtepi32_ps(b);
}

/* sum over one group of w . xt as 8 partial sums: one chain (consecutive groups overlap in the
 * out-of-order window, and a tree would cost one more instruction) */
static inline __m256 group_dot(const __m256 *w, const float *xt) {
    __m256 a = _mm256_mul_ps(w[0], _mm256_loadu_ps(xt));
    a = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xt + 8), a);
    a = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xt + 16), a);
    return _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xt + 24), a);
}

/* a . b over n floats (the zero term: n = K / 32 groups) */
static inline float dot_short(const float *a, const float *b, long n) {
    __m256 acc = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float r = hsum(acc);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

/* one int4 row against one row of x (two = 0) or two rows (two = 1: xt1, xs1, y1 used), each
 * summed in the same order either way; a group is unpacked once for both rows. Even and odd
 * groups go to separate accumulators so that consecutive groups do not wait on each other. */
static inline __attribute__((always_inline)) void dot_q4(
    const float *xt0, const float *xt1, const float *xs0, const float *xs1, const unsigned char *q,
    const float *s, const float *z, long G, int two, float *y0, float *y1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
    __m256 w[4], v[4];
    long g = 0;
    for (; g + 2 <= G; g += 2) {
        __m256 s0 = _mm256_broadcast_ss(s + g), s1 = _mm256_broadcast_ss(s + g + 1);
        unpack_q4(q + 16 * g, w);
        unpack_q4(q + 16 * g + 16, v);
        a0 = _mm256_fmadd_ps(group_dot(w, xt0 + 32 * g), s0, a0);
        a1 = _mm256_fmadd_ps(group_dot(v, xt0 + 32 * g + 32), s1, a1);
        if (two) {
            b0 = _mm256_fmadd_ps(group_dot(w, xt1 + 32 * g), s0, b0);
            b1 = _mm256_fmadd_ps(group_dot(v, xt1 + 32 * g + 32), s1, b1);
        }
    }
    if (g < G) {  /* an odd number of groups: the last one */
        __m256 s0 = _mm256_broadcast_ss(s + g);
        unpack_q4(q + 16 * g, w);
        a0 = _mm256_fmadd_ps(group_dot(w, xt0 + 32 * g), s0, a0);
        if (two) b0 = _mm256_fmadd_ps(group_dot(w, xt1 + 32 * g), s0, b0);
    }
    *y0 = hsum(_mm256_add_ps(a0, a1)) + dot_short(z, xs0, G);
    if (two) *y1 = hsum(_mm256_add_ps(b0, b1)) + dot_short(z, xs1, G);
}

/* Ask for a row of w Q4_AHEAD rows before it is needed. The loop above does too much work per
 * byte for the hardware prefetcher to keep ahead on its own: streaming from memory, one thread
 * read 7 G weights/s without this and 11-12 with it (2 threads: 13-15 and 21-23), 4 to 12 rows
 * ahead all about the same; from L2 it costs a few percent. A prefetch never faults. */
#define Q4_AHEAD 8
static inline void prefetch_q4(const unsigned char *q, const float *s, const float *z, long K) {
    for (long c = 0; c < K / 2; c += 64) _mm_prefetch((const char *)(q + c), _MM_HINT_T0);
    for (long c = 0; c < K / 32; c += 16) {
        _mm_prefetch((const char *)(s + c), _MM_HINT_T0);
        _mm_prefetch((const char *)(z + c), _MM_HINT_T0);
    }
}

/* y_j = x @ w_j.T for up to 4 int4 weights of one input width (K a multiple of 32); qs[j] is
 * (N_j, K / 2) bytes, scales[j] and zeros[j] (N_j, K / 32). Rows of x go two at a time against
 * a row of w, which is read from memory once and from L1 after that. */
void gemv_q4_multi(const float *x, long M, long K, int count, const unsigned char **qs,
                   const float **scales, const float **zeros, float **ys, const long *Ns,
                   int threads) {
    long G = K / 32, first[5] = {0};
    for (int j = 0; j < count; j++) first[j + 1] = first[j] + Ns[j];
    float *xt = (float *)malloc(sizeof(float) * (M * K + M * G)), *xsum = xt + M * K;
    prepare_q4(x, M, K, xt, xsum);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < first[count]; i++) {
        int j = 0;
        while (i >= first[j + 1]) j++;
        long n = i - first[j], N = Ns[j];
        const unsigned char *q = qs[j] + n * K / 2;
        const float *s = scales[j] + n * G, *z = zeros[j] + n * G;
        float *y = ys[j] + n;
        if (n + Q4_AHEAD < N) prefetch_q4(q + Q4_AHEAD * K / 2, s + Q4_AHEAD * G, z + Q4_AHEAD * G, K);
        long m = 0;
        for (; m + 1 < M; m += 2)
            dot_q4(xt + m * K, xt + (m + 1) * K, xsum + m * G, xsum + (m + 1) * G, q, s, z, G, 1,
                   y + m * N, y + (m + 1) * N);
        if (m < M) dot_q4(xt + m * K, 0, xsum + m * G, 0, q, s, z, G, 0, y + m * N, 0);
    }
    free(xt);
}

/* ---- decode attention: one new position per row, over a preallocated cache ---- */

/* Writes k, v (B, Hkv, d) at position t of the caches kc, vc (B, Hkv, cap, d), then
 * out[b, h] = softmax(scale * q[b, h] . kc[b, g, :t+1]) @ vc[b, g, :t+1] with g = h / (H / Hkv),
 * over the positions keep[b, s] != 0 (keep NULL: all). q, out (B, H, d); d a multiple of 8. */
void attend_f32(const float *q, const float *k, const float *v, float *kc, float *vc,
                const unsigned char *keep, float *out, long B, long H, long Hkv, long d, long t,
                long cap, float scale, int threads) {
    long T = t + 1, group = H / Hkv;
    for (long b = 0; b < B; b++)
        for (long g = 0; g < Hkv; g++) {
            long at = ((b * Hkv + g) * cap + t) * d;
            for (long i = 0; i < d; i++) {
                kc[at + i] = k[(b * Hkv + g) * d + i];
                vc[at + i] = v[(b * Hkv + g) * d + i];
            }
        }
    int nt = B * H * T * d > (1L << 17) ? threads : 1;  /* small: threads cost more than they save */
#pragma omp parallel num_threads(nt)
    {
        float *p = (float *)malloc(sizeof(float) * T);
#pragma omp for schedule(static)
        for (long bh = 0; bh < B * H; bh++) {
            long b = bh / H, g = (bh % H) / group;
            const float *qh = q + bh * d;
            const float *kg = kc + (b * Hkv + g) * cap * d, *vg = vc + (b * Hkv + g) * cap * d;
            const unsigned char *kb = keep ? keep + b * T : 0;
            float top = -INFINITY;
            for (long s = 0; s < T; s++) {
                if (kb && !kb[s]) { p[s] = -INFINITY; continue; }
                p[s] = dot(qh, kg + s * d, d) * scale;
                if (p[s] > top) top = p[s];
            }
            float sum = 0;
            for (long s = 0; s < T; s++) {
                p[s] = p[s] == -INFINITY ? 0.0f : expf(p[s] - top);
                sum += p[s];
            }
            float *o = out + bh * d;
            for (long i = 0; i < d; i++) o[i] = 0;
            for (long s = 0; s < T; s++) {
                float w = p[s] / sum;
                if (w == 0) continue;
                for (long i = 0; i < d; i++) o[i] += w * vg[s * d + i];
            }
        }
        free(p);
    }
}
