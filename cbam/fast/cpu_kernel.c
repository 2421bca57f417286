/* CBAM's inference forward on a CPU (float32, NCHW, contiguous): the paper's block, channel
 * attention then spatial attention, as one function that works image by image.
 *
 * The three reads of an image that any CBAM forward needs (global pooling, pooling over
 * channels, the final product) are done one image at a time, so the second and the third find
 * the image still in the core's cache instead of going back to memory. Every loop runs along
 * contiguous memory, so the compiler vectorises it.
 *
 * cbam/fast/cpu_kernel.py compiles this file with the system's C compiler; the tests hold it to the
 * plain PyTorch computation in cbam/attention.py.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sixteen floats: one AVX-512 register, two AVX ones, four NEON ones. The vector extension of
 * GCC and Clang maps the arithmetic onto whatever the target has. */
typedef float vec __attribute__((vector_size(64)));
typedef int32_t vec_mask __attribute__((vector_size(64)));
#define LANES ((int64_t)(sizeof(vec) / sizeof(float)))

static inline vec load(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v); /* an unaligned load */
    return v;
}

static inline vec vec_max(vec a, vec b) {
    vec_mask greater = a > b;
    return (vec)(((vec_mask)a & greater) | ((vec_mask)b & ~greater));
}

static float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* The sigmoid of a whole map. expf is a library call the compiler cannot vectorise, and one per
 * position would take longer than the convolution; so e^-v is computed here as Cephes' expf
 * does it (within about one unit in the last place): -v = n ln2 + r with |r| <= ln2 / 2, e^r by
 * a polynomial, 2^n written into the exponent bits. */
static void sigmoid_map(float *restrict map, int64_t len) {
    for (int64_t i = 0; i < len; i++) {
        float v = -map[i];
        v = v > 88.0f ? 88.0f : v < -88.0f ? -88.0f : v; /* e^88 still fits a float; NaN stays */
        const float n = floorf(v * 1.44269504f + 0.5f);
        const float r = v - n * 0.693359375f + n * 2.12194440e-4f; /* ln2 in two parts */
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        union { int32_t bits; float value; } scale; /* 2^n */
        scale.bits = ((int32_t)(n == n ? n : 0.0f) + 127) << 23;
        map[i] = 1.0f / (1.0f + (1.0f + r + r * r * p) * scale.value);
    }
}

/* Written so that NaN passes through, as torch.relu lets it. */
static float relu(float v) { return v < 0.0f ? 0.0f : v; }

/* Sum and maximum of a row, in LANES independent partial results: C may not reorder float
 * additions by itself, and one running total would make each addition wait for the last. */
static void row_sum_max(const float *restrict row, int64_t len, float *sum_out, float *max_out) {
    vec sum = {0}, max = sum - INFINITY;
    int64_t i = 0;
    for (; i + LANES <= len; i += LANES) {
        vec v = load(row + i);
        sum += v;
        max = vec_max(v, max);
    }
    float s = 0.0f, m = -INFINITY;
    for (; i < len; i++) {
        s += row[i];
        m = row[i] > m ? row[i] : m;
    }
    for (int64_t j = 0; j < LANES; j++) {
        s += sum[j];
        m = max[j] > m ? max[j] : m;
    }
    *sum_out = s;
    *max_out = isnan(s) ? s : m; /* a NaN in the row makes the sum NaN; amax gives NaN too */
}

/* a . b, in LANES partial sums like row_sum_max: with many channels the MLP's dot products
 * would otherwise take longer than all the passes over the image. */
static float dot(const float *restrict a, const float *restrict b, int64_t len) {
    vec sum = {0};
    int64_t i = 0;
    for (; i + LANES <= len; i += LANES) sum += load(a + i) * load(b + i);
    float s = 0.0f;
    for (; i < len; i++) s += a[i] * b[i];
    for (int64_t j = 0; j < LANES; j++) s += sum[j];
    return s;
}

/* Channel gates (Eq. 2) of `images` images from their descriptors avg, max (images x C):
 * gate = sigmoid((W2 relu(W1 avg + b1) + b2) + (W2 relu(W1 max + b1) + b2)). Each row of a
 * weight matrix is read once for all the images and both descriptors: with many channels the
 * weights outweigh a small image. h: scratch for 2 x images x hidden values. */
static void channel_gates(const float *avg, const float *max, int64_t images, int64_t channels,
                          int64_t hidden, const float *w1, const float *b1, const float *w2,
                          const float *b2, float *h, float *gate) {
    float *h_avg = h, *h_max = h + images * hidden;
    for (int64_t j = 0; j < hidden; j++) {
        const float *row = w1 + j * channels, bias = b1 ? b1[j] : 0.0f;
        for (int64_t i = 0; i < images; i++) {
            h_avg[i * hidden + j] = relu(bias + dot(row, avg + i * channels, channels));
            h_max[i * hidden + j] = relu(bias + dot(row, max + i * channels, channels));
        }
    }
    for (int64_t c = 0; c < channels; c++) {
        const float *row = w2 + c * hidden, bias = b2 ? b2[c] : 0.0f;
        for (int64_t i = 0; i < images; i++)
            gate[i * channels + c] = sigmoid((bias + dot(row, h_avg + i * hidden, hidden)) +
                                             (bias + dot(row, h_max + i * hidden, hidden)));
    }
}

/* Sum and maximum over channels of gate[c] * image[c], position by position. The running
 * results are read and written once per POOL_GROUP channels, not once per channel: they would
 * otherwise move more memory than the image itself. */
#define POOL_GROUP 8

static void pool_channels(const float *image, const float *gate, int64_t channels, int64_t len,
                          float *restrict sum, float *restrict max) {
    /* Last channels first: the global pooling has just read them, so they are the likeliest
     * to be still in cache when the image is larger than it. */
    const int64_t last = (channels - 1) / POOL_GROUP * POOL_GROUP;
    for (int64_t c0 = last; c0 >= 0; c0 -= POOL_GROUP) {
        const int64_t group = channels - c0 < POOL_GROUP ? channels - c0 : POOL_GROUP;
        const int fresh = c0 == last; /* no running results yet */
        const float *rows = image + c0 * len;
        int64_t i = 0;
        for (; i + LANES <= len; i += LANES) {
            vec s, m;
            if (fresh) {
                s = m = load(rows + i) * gate[c0];
            } else {
                s = load(sum + i);
                m = load(max + i);
            }
            for (int64_t c = fresh; c < group; c++) {
                const vec v = load(rows + c * len + i) * gate[c0 + c];
                s += v;
                m = vec_max(v, m);
            }
            memcpy(sum + i, &s, sizeof s);
            memcpy(max + i, &m, sizeof m);
        }
        for (; i < len; i++)
            for (int64_t c = 0; c < group; c++) {
                const float v = rows[c * len + i] * gate[c0 + c];
                const int start = fresh && c == 0;
                sum[i] = start ? v : sum[i] + v;
                max[i] = start || v > max[i] ? v : max[i];
            }
    }
}

/* Up to CONV_ROWS rows of the spatial convolution, LANES outputs of each at a time, kept in
 * registers while all 2 k^2 taps are added to them. src: the padded [mean; max] maps at the
 * first output row's first tap. */
#define CONV_ROWS 4

static void conv_rows(const float *src, int64_t map_stride, int64_t row_stride,
                      const float *kernel, int64_t k, float bias, int64_t rows, int64_t width,
                      float *restrict dst) {
    for (int64_t x = 0; x < width; x += LANES) {
        vec acc[CONV_ROWS];
        for (int q = 0; q < CONV_ROWS; q++) acc[q] = (vec){0} + bias;
        for (int64_t c = 0; c < 2; c++)
            for (int64_t i = 0; i < k; i++)
                for (int64_t j = 0; j < k; j++) {
                    const float w = kernel[(c * k + i) * k + j];
                    const float *in = src + c * map_stride + i * row_stride + x + j;
                    /* Rows past the last are computed from the padding and dropped. */
                    for (int q = 0; q < CONV_ROWS; q++) acc[q] += w * load(in + q * row_stride);
                }
        const int64_t valid = width - x < LANES ? width - x : LANES;
        for (int64_t q = 0; q < rows; q++) memcpy(dst + q * width + x, &acc[q], valid * sizeof(float));
    }
}

/* (gate * row) * spatial: the same two products, in the same order, as Eq. 1. */
static void gate_row(const float *restrict row, float gate, const float *restrict spatial,
                     int64_t len, float *restrict dst) {
    for (int64_t i = 0; i < len; i++) dst[i] = (row[i] * gate) * spatial[i];
}

/* Images first..last-1 of x (N, C, H, W) into out. w1 (hidden, C), w2 (C, hidden): the shared
 * MLP; b1, b2 may be NULL. kernel (2, k, k): the spatial convolution, k odd, zero padding k / 2;
 * conv_bias may be NULL. Returns 0, or 1 when scratch memory could not be allocated. */
/* Images in a group whose channel gates are computed together: as many as fit in
 * GROUP_BYTES, which most cores' L2 caches hold, so that the passes after the gates still find
 * each image in cache; at least one. */
#define GROUP_BYTES (1 << 20)

/* Images first..last-1 of x (N, C, H, W) into out. w1 (hidden, C), w2 (C, hidden): the shared
 * MLP; b1, b2 may be NULL. kernel (2, k, k): the spatial convolution, k odd, zero padding k / 2;
 * conv_bias may be NULL. Returns 0, or 1 when scratch memory could not be allocated. */
int cbam_forward(const float *x, float *out, int64_t first, int64_t last, int64_t channels,
                 int64_t height, int64_t width, const float *w1, const float *b1, int64_t hidden,
                 const float *w2, const float *b2, const float *kernel, int64_t k,
                 const float *conv_bias) {
    const int64_t hw = height * width, pad = k / 2;
    const int64_t image_bytes = channels * hw * (int64_t)sizeof(float);
    const int64_t group = image_bytes >= GROUP_BYTES ? 1 : GROUP_BYTES / image_bytes;
    /* The padded maps are wide enough for whole vectors of outputs: the convolution computes a
     * few outputs past the right edge from the zeros there, and drops them. */
    const int64_t padded_w = (width + LANES - 1) / LANES * LANES + 2 * pad;
    const int64_t padded_hw = (height + CONV_ROWS - 1 + 2 * pad) * padded_w;
    float *scratch = malloc(sizeof(float) *
                           (group * (3 * channels + 2 * hidden) + 2 * padded_hw + 3 * hw));
    if (!scratch) return 1;
    float *avg = scratch, *max = avg + group * channels, *gates = max + group * channels;
    float *h = gates + group * channels, *padded = h + 2 * group * hidden;
    float *chan_sum = padded + 2 * padded_hw, *chan_max = chan_sum + hw, *spatial = chan_max + hw;
    memset(padded, 0, sizeof(float) * 2 * padded_hw); /* the zero border stays zero */

    for (int64_t n0 = first; n0 < last; n0 += group) {
        const int64_t images = last - n0 < group ? last - n0 : group;

        /* Channel gates (Eq. 2): average and maximum of each channel, one shared MLP. */
        for (int64_t i = 0; i < images * channels; i++) {
            row_sum_max(x + n0 * channels * hw + i * hw, hw, &avg[i], &max[i]);
            avg[i] /= (float)hw;
        }
        channel_gates(avg, max, images, channels, hidden, w1, b1, w2, b2, h, gates);

        for (int64_t n = n0; n < n0 + images; n++) {
            const float *image = x + n * channels * hw, *gate = gates + (n - n0) * channels;

            /* Mean and maximum over channels of the gated image. */
            pool_channels(image, gate, channels, hw, chan_sum, chan_max);

            /* Spatial gate (Eq. 3): the k x k convolution over the zero-padded [mean; max]. */
            for (int64_t y = 0; y < height; y++)
                for (int64_t x_ = 0; x_ < width; x_++) {
                    const int64_t i = y * width + x_, p = (y + pad) * padded_w + x_ + pad;
                    padded[p] = chan_sum[i] / (float)channels;
                    padded[padded_hw + p] = isnan(chan_sum[i]) ? chan_sum[i] : chan_max[i];
                }
            for (int64_t y = 0; y < height; y += CONV_ROWS)
                conv_rows(padded + y * padded_w, padded_hw, padded_w, kernel, k,
                          conv_bias ? conv_bias[0] : 0.0f,
                          height - y < CONV_ROWS ? height - y : CONV_ROWS, width,
                          spatial + y * width);
            sigmoid_map(spatial, hw);

            for (int64_t c = 0; c < channels; c++)
                gate_row(image + c * hw, gate[c], spatial, hw, out + (n * channels + c) * hw);
        }
    }
    free(scratch);
    return 0;
}
