/* The element-wise kernels of a training step on the CPU, built with gemv.c by engines/cpu_kernels.py.
 *
 * 1. Causal softmax forward and backward for engines/attention.py (training attention).
 *
 * The matmuls of attention (q k^T, p v and their gradients) run in torch's GEMM; these two
 * kernels are the element-wise work between them, one pass over each row of the scores while
 * it is in cache, where torch needs four or five passes over the whole (B, H, T, T) tensor.
 *
 * Rows are causal with the diagonal at the bottom right: row i of an (M, N) block sees
 * columns 0 .. i + N - M, so a block of the last M query rows against all N keys is exact.
 * Columns beyond what a row sees are written as 0, never read.
 *
 * causal_softmax_f32: s (R, M, N) raw scores q . k, in place: p = softmax(scale * s); with a
 *     mask (bytes, nonzero: may attend), also only over the columns the mask allows. R = B * H;
 *     the mask row of block row i of (b, h) is mask + b * msb + h * msh + (i + N - M) * msr (a
 *     stride 0 broadcasts). A row that may attend nowhere is all 0 (as torch's SDPA gives).
 * causal_softmax_bwd_f32: dp (R, M, N) = dO v^T, p from the forward, in place:
 *     ds = scale * p * (dp - sum_j p_j dp_j), the gradient of the raw scores (the sum is
 *     dO . O, read from the row instead of another pass over O). No mask is needed: p is 0
 *     wherever the forward's mask was.
 */
#include <immintrin.h>
#include <math.h>

/* exp on 8 floats, Cephes' polynomial (relative error about 2e-7 over -88 .. 88) */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)),
                      _mm256_set1_ps(-87.3365447504f));
    __m256 fx = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline float hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    return _mm_cvtss_f32(lo);
}

static inline float hmax8(__m256 v) {
    __m128 lo = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_max_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}

/* the first n of the 8 lanes */
static inline __m256i lanes(long n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static void softmax_row(float *s, long n, long N, float scale) {
    long j = 0, tail = n & ~7L;
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    for (; j < tail; j += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(s + j));
    float top = hmax8(m8);
    for (; j < n; j++) top = fmaxf(top, s[j]);
    __m256 vs = _mm256_set1_ps(scale), vt = _mm256_set1_ps(scale * top), sum8 = _mm256_setzero_ps();
    for (j = 0; j < tail; j += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), vs, vt));
        _mm256_storeu_ps(s + j, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    if (j < n) {
        __m256i k = lanes(n - j);
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_maskload_ps(s + j, k), vs, vt));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(s + j, k, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum8(sum8));
    for (j = 0; j < tail; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    for (; j < n; j++) s[j] *= _mm256_cvtss_f32(inv);
    for (j = n; j < N; j++) s[j] = 0.0f;
}

static void softmax_bwd_row(float *dp, const float *p, long n, long N, float scale) {
    long j = 0, tail = n & ~7L;
    __m256 d8 = _mm256_setzero_ps();
    for (; j < tail; j += 8) d8 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(dp + j), d8);
    float d = hsum8(d8);
    for (; j < n; j++) d += p[j] * dp[j];
    __m256 vd = _mm256_set1_ps(d), vs = _mm256_set1_ps(scale);
    for (j = 0; j < tail; j += 8) {
        __m256 g = _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd);
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_loadu_ps(p + j)), vs));
    }
    for (; j < n; j++) dp[j] = (dp[j] - d) * p[j] * scale;
    for (j = n; j < N; j++) dp[j] = 0.0f;
}

/* softmax_row where only the columns with m[j] != 0 count */
static void masked_softmax_row(float *s, const unsigned char *m, long n, long N, float scale) {
    float top = -INFINITY, sum = 0.0f;
    long j = 0, tail = n & ~7L;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m8 = ninf;
    for (; j < tail; j += 8) {
        __m256 ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(m + j))), _mm256_setzero_si256()));
        m8 = _mm256_max_ps(m8, _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + j), ok));
    }
    top = hmax8(m8);
    for (; j < n; j++)
        if (m[j]) top = fmaxf(top, s[j]);
    if (top == -INFINITY) {  /* nothing to attend to */
        for (j = 0; j < N; j++) s[j] = 0.0f;
        return;
    }
    __m256 vs = _mm256_set1_ps(scale), vt = _mm256_set1_ps(scale * top), sum8 = _mm256_setzero_ps();
    for (j = 0; j < tail; j += 8) {
        __m256 ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
            _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(m + j))), _mm256_setzero_si256()));
        __m256 e = _mm256_and_ps(exp8(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), vs, vt)), ok);
        _mm256_storeu_ps(s + j, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    sum = hsum8(sum8);
    for (; j < n; j++) {
        s[j] = m[j] ? expf(scale * s[j] - scale * top) : 0.0f;
        sum += s[j];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j < tail; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
    for (; j < n; j++) s[j] *= _mm256_cvtss_f32(inv);
    for (j = n; j < N; j++) s[j] = 0.0f;
}

void causal_softmax_f32(float *s, long R, long M, long N, float scale, const unsigned char *mask,
                        long H, long msb, long msh, long msr, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < R * M; r++) {
        long bh = r / M, i = r % M;
        if (mask)
            masked_softmax_row(s + r * N, mask + (bh / H) * msb + (bh % H) * msh + (i + N - M) * msr,
                               i + N - M + 1, N, scale);
        else
            softmax_row(s + r * N, i + N - M + 1, N, scale);
    }
}

void causal_softmax_bwd_f32(float *dp, const float *p, long R, long M, long N, float scale,
                            int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < R * M; r++) {
        long i = r % M;
        softmax_bwd_row(dp + r * N, p + r * N, i + N - M + 1, N, scale);
    }
}

/* 2. Cross-entropy of a chunk of logits for engines/lm_loss.py (the output layer fused with
 * the loss). x (M, V) logits, y (M) target ids, share (M) each row's weight in the mean loss
 * (0 for a row that does not count: its target is not read). Writes loss[i] = logsumexp(x_i) -
 * x_i[y_i] (0 where share is 0) and, when grad is nonzero, replaces x with the gradient of
 * sum_i share_i * loss_i: share_i * (softmax(x_i) - onehot(y_i)). One row at a time, while it
 * is in cache, where torch makes five passes over the whole chunk. */
static void cross_entropy_row(float *x, long y, float share, long V, int grad, float *loss) {
    if (share == 0.0f) {
        *loss = 0.0f;
        if (grad)
            for (long j = 0; j < V; j++) x[j] = 0.0f;
        return;
    }
    long j = 0, tail = V & ~7L;
    float target = x[y];
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    for (; j < tail; j += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + j));
    float top = hmax8(m8);
    for (; j < V; j++) top = fmaxf(top, x[j]);
    __m256 vt = _mm256_set1_ps(top), sum8 = _mm256_setzero_ps();
    for (j = 0; j < tail; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vt));
        if (grad) _mm256_storeu_ps(x + j, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    float sum = hsum8(sum8);
    for (; j < V; j++) {
        float e = expf(x[j] - top);
        if (grad) x[j] = e;
        sum += e;
    }
    *loss = top + logf(sum) - target;
    if (!grad) return;
    __m256 scale = _mm256_set1_ps(share / sum);
    for (j = 0; j < tail; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), scale));
    for (; j < V; j++) x[j] *= share / sum;
    x[y] -= share;
}

void cross_entropy_f32(float *x, const long *y, const float *share, float *loss, long M, long V,
                       int grad, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < M; i++) cross_entropy_row(x + i * V, y[i], share[i], V, grad, loss + i);
}
