"""
``DDPGPlus(native_update="auto")`` (the default): the gradient steps of a ``train()`` call as one C loop around a BLAS.

The hand-written update of :mod:`sb3_ddpg_plus.manual_backward` runs about 90 eager PyTorch operations per gradient
step; at [64, 64] their dispatch costs more than their arithmetic (``benchmarks/results/speed.md``), and
``compile_update`` still pays inductor's kernel launches and runtime wrapper. Here the same update (TD target, critic
gradients, Adam, delayed actor gradients through the first Q-network, Adam, Polyak update) is one C function for
all the steps of a call: its matrix products are calls of a BLAS ``sgemm`` (PyTorch's own ``sgemm_``, what
``torch.mm`` runs, or numpy's OpenBLAS where it is measured faster: :mod:`sb3_ddpg_plus.native_blas`), everything
else is plain loops. The host side (checks, the same replay samples, the target-policy noise drawn from torch's
generator, the optimizers' learning rates and state) is :class:`~sb3_ddpg_plus.compiled_update.CompiledUpdate`'s:
parameters, targets, Adam moments and step counters are the real tensors, updated in place, and the last step's
gradients are written to ``.grad``, so saving, loading, callbacks and switching between the paths see what the eager
loop leaves.

Arithmetic: compiled without ``-ffast-math`` and with ``-ffp-contract=off``, the elementwise operations are the eager
path's float32 operations in the same order (tanh from the C library, within an ulp of PyTorch's); the sums over the
batch (bias gradients, losses) are taken in row order, where PyTorch's reductions use another order. The two paths
agree to float32 rounding (tested to 1e-5 relative over calls of several steps, as the compiled path; one step
matches the textbook reference to 1e-6).

It covers every network the hand-written gradients cover, layer norm after hidden layers included (the layer-norm
policies, so the recommended configuration); its row means and variances are summed in another order than PyTorch's
layer-norm kernel, so with layer norm the two paths agree to 1e-4 relative over calls of several steps (one step still
matches the reference to 1e-6). Anything this path does not cover makes ``train()`` run its eager loop: what the
compiled path does not cover besides layer norm (hooks, GPU, prioritized replay, parameter noise, ``check_numerics``,
optimizers other than plain Adam), tensors that are not contiguous float32, no BLAS ``sgemm`` exported, and no C
compiler. With ``"auto"`` it does so silently; with ``native_update=True`` it warns once per reason.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import torch as th

from sb3_ddpg_plus import native_blas, native_build
from sb3_ddpg_plus.compiled_update import AdamGroup, CompiledUpdate, UpdateConfig, _Unsupported
from sb3_ddpg_plus.manual_backward import ManualBackward, PlainMLP, _grad_buffer
from sb3_ddpg_plus.train_utils import LossSums

# IEEE float32 arithmetic in the order written: no -ffast-math, no contraction of a*b+c into an FMA. -O3 vectorizes
# the elementwise loops (reductions stay in order: float sums are not reassociated without -ffast-math);
# -fno-math-errno lets sqrtf vectorize (it only drops the errno write for negative inputs, as PyTorch is built)
_FLAGS = ["-O3", "-std=gnu99", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Elementwise loops are also compiled for AVX2 where GCC can pick the variant at load time (x86-64): the same
   IEEE operations per element, so the same results, on wider registers */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WIDE __attribute__((target_clones("avx2", "default")))
#else
#define WIDE
#endif

/* A BLAS sgemm, Fortran interface with 32-bit integers (PyTorch's sgemm_: the kernel torch.mm calls) */
typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *, const float *,
                         const float *, const int *, const float *, const int *, const float *, float *, const int *);

/* The same function of an ILP64 BLAS (64-bit integers), such as the OpenBLAS inside numpy's wheels */
typedef void (*sgemm64_fn)(const char *, const char *, const int64_t *, const int64_t *, const int64_t *,
                           const float *, const float *, const int64_t *, const float *, const int64_t *,
                           const float *, float *, const int64_t *);

typedef struct {
    void *gemm;
    int ilp64;
    float *spare;  /* room for a skinny product's transpose (SKINNY_MAX x rows) */
} Ctx;

#define SKINNY_MAX 16

/* Row-major C (m x n) = op(A) op(B) + beta C, as the column-major product C^T = op(B)^T op(A)^T: the call torch's
   addmm/mm make for row-major tensors (transposed = the tensor is used transposed) */
static void mm_direct(const Ctx *ctx, int trans_a, int trans_b, int m, int n, int k, const float *a, int lda,
                      const float *b, int ldb, float beta, float *c, int ldc) {
    const char ca = trans_a ? 'T' : 'N', cb = trans_b ? 'T' : 'N';
    const float one = 1.0f;
    if (ctx->ilp64) {
        const int64_t m64 = m, n64 = n, k64 = k, lda64 = lda, ldb64 = ldb, ldc64 = ldc;
        ((sgemm64_fn)ctx->gemm)(&cb, &ca, &n64, &m64, &k64, &one, b, &ldb64, a, &lda64, &beta, c, &ldc64);
    } else {
        ((sgemm_fn)ctx->gemm)(&cb, &ca, &n, &m, &k, &one, b, &ldb, a, &lda, &beta, c, &ldc);
    }
}

/* The same product; one with few (2-16) columns and many rows is computed as its transpose, which one-thread MKL
   runs 2-3x faster (sb3_ddpg_plus/matmul.py: the same rule as the eager path), then transposed back */
static void mm(const Ctx *ctx, int trans_a, int trans_b, int m, int n, int k, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc) {
    if (n < 2 || n > SKINNY_MAX || m < 4 * n) {
        mm_direct(ctx, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    float *t = ctx->spare; /* n x m */
    if (beta != 0.0f)
        for (int r = 0; r < m; r++)
            for (int j = 0; j < n; j++) t[(int64_t)j * m + r] = c[(int64_t)r * ldc + j];
    mm_direct(ctx, !trans_b, !trans_a, n, m, k, b, ldb, a, lda, beta, t, m);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < n; j++) c[(int64_t)r * ldc + j] = t[(int64_t)j * m + r];
}

#define MAX_CRITICS 8
#define MAX_LAYERS 32

typedef struct {
    int layers;            /* Linear layers */
    const int64_t *sizes;  /* sizes[0]: input width, sizes[l + 1]: output width of layer l */
    float *const *params;  /* weight (out x in, row-major), bias, per layer; then each layer norm's weight, bias */
    int tanh_hidden;       /* hidden activation: tanh (else ReLU) */
    int squash;            /* tanh on the output */
    int n_params;          /* 2 per layer, 2 per layer norm */
    int norm_at[MAX_LAYERS];     /* per hidden layer: index in params of its layer norm's weight, or -1 */
    int norm_layer[MAX_LAYERS];  /* per layer norm: its hidden layer */
    float norm_eps[MAX_LAYERS];  /* per hidden layer: its layer norm's eps */
} Net;

/* norm_eps: per hidden layer (layers - 1 values), its layer norm's eps, or a negative value when it has none */
static void setup_net(Net *net, int layers, const int64_t *sizes, float *const *params, int tanh_hidden, int squash,
                      const double *norm_eps) {
    net->layers = layers;
    net->sizes = sizes;
    net->params = params;
    net->tanh_hidden = tanh_hidden;
    net->squash = squash;
    net->n_params = 2 * layers;
    for (int l = 0; l < layers - 1; l++) {
        net->norm_at[l] = -1;
        if (norm_eps[l] >= 0.0) {
            net->norm_layer[(net->n_params - 2 * layers) / 2] = l;
            net->norm_at[l] = net->n_params;
            net->norm_eps[l] = (float)norm_eps[l];
            net->n_params += 2;
        }
    }
}

/* What a network's layer norms keep for the backward pass, per hidden layer: the norm's input, each row's mean and
   1 / std (one set per network slot, reused by its target's forward pass) */
typedef struct {
    float *pre[MAX_LAYERS], *mean[MAX_LAYERS], *rstd[MAX_LAYERS];
} Saved;

/* Layer norm of each row of y (batch x width), in place, as PyTorch's CPU kernel: (x * rstd + (-rstd * mean)) *
   weight + bias; the input, means and 1 / std kept in pre, mean, rstd */
static void layer_norm(const float *weight, const float *bias, float eps, int batch, int width, float *y, float *pre,
                       float *mean, float *rstd) {
    memcpy(pre, y, sizeof(float) * (size_t)batch * (size_t)width);
    for (int r = 0; r < batch; r++) {
        const float *x = pre + (int64_t)r * width;
        float *o = y + (int64_t)r * width;
        float sum = 0.0f;
        for (int j = 0; j < width; j++) sum += x[j];
        const float mu = sum / (float)width;
        float squares = 0.0f;
        for (int j = 0; j < width; j++) {
            const float d = x[j] - mu;
            squares += d * d;
        }
        const float rs = 1.0f / sqrtf(squares / (float)width + eps);
        const float shift = -rs * mu;
        mean[r] = mu;
        rstd[r] = rs;
        for (int j = 0; j < width; j++) o[j] = (x[j] * rs + shift) * weight[j] + bias[j];
    }
}

/* Gradient through a layer norm, in place on grad (batch x width: the gradient of its output on entry, of its input
   on return), as PyTorch's CPU kernel; the weight and bias gradients written when wanted (not NULL) */
static void layer_norm_backward(const float *weight, int batch, int width, const float *pre, const float *mean,
                                const float *rstd, float *grad, float *weight_grad, float *bias_grad) {
    if (weight_grad) {
        memset(weight_grad, 0, sizeof(float) * (size_t)width);
        memset(bias_grad, 0, sizeof(float) * (size_t)width);
        for (int r = 0; r < batch; r++) {
            const float *x = pre + (int64_t)r * width, *dy = grad + (int64_t)r * width;
            const float rs = rstd[r], shift = -rstd[r] * mean[r];
            for (int j = 0; j < width; j++) {
                weight_grad[j] += dy[j] * (x[j] * rs + shift);
                bias_grad[j] += dy[j];
            }
        }
    }
    const float scale = 1.0f / (float)width;
    for (int r = 0; r < batch; r++) {
        const float *x = pre + (int64_t)r * width;
        float *dy = grad + (int64_t)r * width;
        float ds = 0.0f, db = 0.0f;
        for (int j = 0; j < width; j++) {
            ds += dy[j] * weight[j] * x[j];
            db += dy[j] * weight[j];
        }
        const float a = rstd[r];
        const float b = (db * mean[r] - ds) * a * a * a * scale;
        const float c = -b * mean[r] - db * a * scale;
        for (int j = 0; j < width; j++) dy[j] = a * dy[j] * weight[j] + b * x[j] + c;
    }
}

/* outs[0] = x (batch x sizes[0], contiguous); outs[l + 1] = layer l's output after its layer norm and activation */
WIDE static void forward(const Ctx *ctx, const Net *net, const Saved *saved, int batch, float **outs) {
    for (int l = 0; l < net->layers; l++) {
        const int in = (int)net->sizes[l], out = (int)net->sizes[l + 1];
        const float *weight = net->params[2 * l], *bias = net->params[2 * l + 1];
        float *y = outs[l + 1];
        /* F.linear: the bias, then x W^T added by the product (addmm with beta 1) */
        for (int r = 0; r < batch; r++) memcpy(y + (int64_t)r * out, bias, sizeof(float) * out);
        mm(ctx, 0, 1, batch, out, in, outs[l], in, weight, in, 1.0f, y, out);
        const int64_t n = (int64_t)batch * out;
        if (l < net->layers - 1 && net->norm_at[l] >= 0) {
            const int at = net->norm_at[l];
            layer_norm(net->params[at], net->params[at + 1], net->norm_eps[l], batch, out, y, saved->pre[l],
                       saved->mean[l], saved->rstd[l]);
        }
        if (l < net->layers - 1 ? net->tanh_hidden : net->squash) {
            for (int64_t i = 0; i < n; i++) y[i] = tanhf(y[i]);
        } else if (l < net->layers - 1) {
            for (int64_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i]; /* relu (NaN stays NaN) */
        }
    }
}

/* Back-propagates grad (batch x output width, overwritten; scratch: the same size as the widest layer) through the
   network of outputs outs. grads != NULL: each parameter's gradient written there. input_start >= 0: the gradient of
   the input columns [input_start, in) written to grad_input (batch x (in - input_start)). */
WIDE static void backward(const Ctx *ctx, const Net *net, const Saved *saved, int batch, float *const *outs,
                          float *grad, float *scratch, float *const *grads, int input_start, float *grad_input) {
    const int last = net->layers - 1;
    if (net->squash) {
        const float *y = outs[last + 1];
        const int64_t n = (int64_t)batch * net->sizes[last + 1];
        for (int64_t i = 0; i < n; i++) grad[i] = grad[i] * (1.0f - y[i] * y[i]);
    }
    for (int l = last; l >= 0; l--) {
        const int in = (int)net->sizes[l], out = (int)net->sizes[l + 1];
        const float *weight = net->params[2 * l];
        if (grads) {
            mm(ctx, 1, 0, out, in, batch, grad, out, outs[l], in, 0.0f, grads[2 * l], in);
            float *bias_grad = grads[2 * l + 1];
            memcpy(bias_grad, grad, sizeof(float) * out);
            for (int r = 1; r < batch; r++) {
                const float *row = grad + (int64_t)r * out;
                for (int j = 0; j < out; j++) bias_grad[j] += row[j];
            }
        }
        if (l > 0) {
            mm(ctx, 0, 0, batch, in, out, grad, out, weight, in, 0.0f, scratch, in);
            const float *h = outs[l];
            const int64_t n = (int64_t)batch * in;
            if (net->tanh_hidden) {
                for (int64_t i = 0; i < n; i++) scratch[i] = scratch[i] * (1.0f - h[i] * h[i]);
            } else {
                for (int64_t i = 0; i < n; i++) scratch[i] = h[i] > 0.0f ? scratch[i] : 0.0f;
            }
            const int at = net->norm_at[l - 1];
            if (at >= 0)
                layer_norm_backward(net->params[at], batch, in, saved->pre[l - 1], saved->mean[l - 1],
                                    saved->rstd[l - 1], scratch, grads ? grads[at] : NULL, grads ? grads[at + 1] : NULL);
            float *swap = grad;
            grad = scratch;
            scratch = swap;
        } else if (input_start >= 0) {
            mm(ctx, 0, 0, batch, in - input_start, out, grad, out, weight + input_start, in, 0.0f, grad_input,
               in - input_start);
        }
    }
}

static int64_t n_params(const Net *net, int idx) {
    if (idx >= 2 * net->layers) return net->sizes[net->norm_layer[(idx - 2 * net->layers) / 2] + 1];
    const int l = idx / 2;
    return idx % 2 ? net->sizes[l + 1] : net->sizes[l + 1] * net->sizes[l];
}

/* Adam, element by element as PyTorch's fused CPU kernel (step_size = lr / (1 - beta1^t) and bias2 =
   sqrt(1 - beta2^t) from the host) */
WIDE static void adam(const Net *net, float *const *grads, float *const *avgs, float *const *sqs, const float *decays,
                 const double *hyper, float step_size, float bias2) {
    const float beta1 = (float)hyper[0], beta2 = (float)hyper[1], eps = (float)hyper[2];
    const float one_minus_beta1 = (float)(1.0 - hyper[0]), one_minus_beta2 = (float)(1.0 - hyper[1]);
    for (int idx = 0; idx < net->n_params; idx++) {
        float *p = net->params[idx], *m = avgs[idx], *v = sqs[idx];
        const float *g = grads[idx];
        const float decay = decays[idx];
        const int64_t n = n_params(net, idx);
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            if (decay != 0.0f) gi = gi + p[i] * decay;
            m[i] = m[i] * beta1 + gi * one_minus_beta1;
            v[i] = v[i] * beta2 + gi * gi * one_minus_beta2;
            const float denom = sqrtf(v[i]) / bias2 + eps;
            p[i] = p[i] - step_size * m[i] / denom;
        }
    }
}

/* lr / (1 - beta1^t) and sqrt(1 - beta2^t) in double precision, then float32: what the host gives the fused kernel */
static void adam_scalars(double lr, double beta1, double beta2, double t, float *step_size, float *bias2) {
    *step_size = (float)(lr / (1.0 - pow(beta1, t)));
    *bias2 = (float)sqrt(1.0 - pow(beta2, t));
}

/* target <- target + tau (online - target): torch.lerp for tau < 0.5 */
WIDE static void polyak(const Net *net, const Net *target, float tau) {
    for (int idx = 0; idx < net->n_params; idx++) {
        const float *p = net->params[idx];
        float *t = target->params[idx];
        const int64_t n = n_params(net, idx);
        for (int64_t i = 0; i < n; i++) t[i] = t[i] + tau * (p[i] - t[i]);
    }
}

static void concat(int batch, const float *x, int width_x, const float *a, int width_a, float *out) {
    for (int r = 0; r < batch; r++) {
        memcpy(out + (int64_t)r * (width_x + width_a), x + (int64_t)r * width_x, sizeof(float) * width_x);
        memcpy(out + (int64_t)r * (width_x + width_a) + width_x, a + (int64_t)r * width_a, sizeof(float) * width_a);
    }
}

/* Floats of ddpg_update's workspace; *width: the widest layer (inputs included) */
static int64_t workspace(const int64_t *dims, const int64_t *actor_sizes, const int64_t *critic_sizes,
                         const double *norm_eps, int64_t *width) {
    const int64_t b = dims[2], actor_layers = dims[5], critic_layers = dims[6], n_critics = dims[7];
    int64_t widest = dims[3] + dims[4], floats = 0, actor_floats = 0, q_floats = 0;
    for (int64_t l = 0; l < actor_layers; l++) {
        widest = actor_sizes[l + 1] > widest ? actor_sizes[l + 1] : widest;
        actor_floats += actor_sizes[l + 1] * (actor_sizes[l] + 1);
        floats += b * actor_sizes[l + 1];
    }
    for (int64_t l = 0; l < critic_layers; l++) {
        widest = critic_sizes[l + 1] > widest ? critic_sizes[l + 1] : widest;
        q_floats += critic_sizes[l + 1] * (critic_sizes[l] + 1);
        floats += n_critics * b * critic_sizes[l + 1];
    }
    /* The layer norms' saved inputs, means and 1 / std: one actor slot, one slot per Q-network */
    for (int64_t l = 0; l < actor_layers - 1; l++)
        if (norm_eps[l] >= 0.0) floats += b * (actor_sizes[l + 1] + 2);
    for (int64_t l = 0; l < critic_layers - 1; l++)
        if (norm_eps[actor_layers - 1 + l] >= 0.0) floats += n_critics * b * (critic_sizes[l + 1] + 2);
    /* The layer norms' parameter gradients */
    for (int64_t l = 0; l < actor_layers - 1; l++)
        if (norm_eps[l] >= 0.0) floats += 2 * actor_sizes[l + 1];
    for (int64_t l = 0; l < critic_layers - 1; l++)
        if (norm_eps[actor_layers - 1 + l] >= 0.0) floats += 2 * n_critics * critic_sizes[l + 1];
    *width = widest;
    return floats + 4 * b * widest + 2 * b + SKINNY_MAX * (b > widest ? b : widest) + actor_floats + n_critics * q_floats;
}

int64_t ddpg_workspace_floats(const int64_t *dims, const int64_t *actor_sizes, const int64_t *critic_sizes,
                              const double *norm_eps) {
    int64_t width;
    return workspace(dims, actor_sizes, critic_sizes, norm_eps, &width);
}

/* Runs `steps` gradient steps of DDPG/TD3 (see sb3_ddpg_plus/native_update.py for the arguments); returns 0, or -1
   when the workspace could not be allocated (nothing was changed then). */
int ddpg_update(void *gemm, const int64_t *dims, const int64_t *actor_sizes, const int64_t *critic_sizes,
                const double *norm_eps, const double *hyper, const float *decays, float *const *state,
                const float *const *batch, const double *rates, float *const *step_counters, float *const *grads_out,
                float *work, int64_t work_floats, double *totals) {
    const int steps = (int)dims[0], delay = (int)dims[1], b = (int)dims[2], features = (int)dims[3];
    const int actions = (int)dims[4], actor_layers = (int)dims[5], critic_layers = (int)dims[6];
    const int n_critics = (int)dims[7], has_noise = (int)dims[10];
    if (n_critics > MAX_CRITICS || actor_layers > MAX_LAYERS || critic_layers > MAX_LAYERS) return -2;
    /* The networks (their parameters are set below, once their counts are known) */
    Net actor, actor_target, q[MAX_CRITICS], q_target[MAX_CRITICS];
    setup_net(&actor, actor_layers, actor_sizes, state, (int)dims[8], 1, norm_eps);
    setup_net(&q[0], critic_layers, critic_sizes, state, (int)dims[9], 0, norm_eps + actor_layers - 1);
    const int n_actor = actor.n_params, n_q = q[0].n_params, n_critic = n_q * n_critics;
    /* Adam's step counters: the Q-networks' parameters, then the actor's; one count per optimizer */
    const float critic_count = *step_counters[0], actor_count = *step_counters[n_critic];
    for (int idx = 0; idx < n_critic; idx++)
        if (*step_counters[idx] != critic_count) return -3;
    for (int idx = 0; idx < n_actor; idx++)
        if (*step_counters[n_critic + idx] != actor_count) return -3;
    /* The state, in the order of CompiledUpdate's flat state */
    float *const *actor_p = state;
    float *const *critic_p = actor_p + n_actor;
    float *const *actor_target_p = critic_p + n_critic;
    float *const *critic_target_p = actor_target_p + n_actor;
    float *const *actor_avg = critic_target_p + n_critic;
    float *const *actor_sq = actor_avg + n_actor;
    float *const *critic_avg = actor_sq + n_actor;
    float *const *critic_sq = critic_avg + n_critic;
    actor_target = actor;
    actor_target.params = actor_target_p;
    for (int k = 0; k < n_critics; k++) {
        q[k] = q[0];
        q[k].params = critic_p + k * n_q;
        q_target[k] = q[0];
        q_target[k].params = critic_target_p + k * n_q;
    }
    /* Workspace (the caller's, kept between calls): layer outputs, gradients, scratch */
    int64_t width = 0;
    if (work_floats < workspace(dims, actor_sizes, critic_sizes, norm_eps, &width)) return -1;
    float *cursor = work;
    float *actor_outs[MAX_LAYERS + 1], *q_outs[MAX_CRITICS][MAX_LAYERS + 1];
    for (int l = 1; l <= actor_layers; l++) {
        actor_outs[l] = cursor;
        cursor += b * actor_sizes[l];
    }
    for (int k = 0; k < n_critics; k++) {
        for (int l = 1; l <= critic_layers; l++) {
            q_outs[k][l] = cursor;
            cursor += b * critic_sizes[l];
        }
    }
    float *input = cursor; cursor += b * width;
    float *grad = cursor; cursor += b * width;
    float *scratch = cursor; cursor += b * width;
    float *grad_actions = cursor; cursor += b * width;
    float *spare = cursor; cursor += (int64_t)SKINNY_MAX * (b > width ? b : width);
    float *next_q = cursor; cursor += b;
    float *target_q = cursor; cursor += b;
    float *actor_grads[4 * MAX_LAYERS], *critic_grads[4 * MAX_LAYERS * MAX_CRITICS];
    for (int idx = 0; idx < n_actor; idx++) { actor_grads[idx] = cursor; cursor += n_params(&actor, idx); }
    for (int idx = 0; idx < n_critic; idx++) { critic_grads[idx] = cursor; cursor += n_params(&q[0], idx % n_q); }
    Saved actor_saved, q_saved[MAX_CRITICS];
    for (int l = 0; l < actor_layers - 1; l++) {
        if (actor.norm_at[l] < 0) continue;
        actor_saved.pre[l] = cursor; cursor += b * actor_sizes[l + 1];
        actor_saved.mean[l] = cursor; cursor += b;
        actor_saved.rstd[l] = cursor; cursor += b;
    }
    for (int k = 0; k < n_critics; k++) {
        for (int l = 0; l < critic_layers - 1; l++) {
            if (q[0].norm_at[l] < 0) continue;
            q_saved[k].pre[l] = cursor; cursor += b * critic_sizes[l + 1];
            q_saved[k].mean[l] = cursor; cursor += b;
            q_saved[k].rstd[l] = cursor; cursor += b;
        }
    }

    const Ctx context = {gemm, (int)dims[11], spare}, *ctx = &context;
    const float tau = (float)hyper[0], noise_clip = (float)hyper[1];
    const float error_scale = (float)(2.0 / b), actor_grad = (float)(-1.0 / b);
    double critic_loss_sum = 0.0, mean_q_sum = 0.0, actor_loss_sum = 0.0;
    const int phase = (int)rates[2]; /* gradient steps taken before this call, modulo policy_delay */
    int actor_steps = 0;
    for (int s = 0; s < steps; s++) {
        const float *obs = batch[0] + (int64_t)s * b * features, *act = batch[1] + (int64_t)s * b * actions;
        const float *next_obs = batch[2] + (int64_t)s * b * features;
        const float *rewards = batch[3] + (int64_t)s * b, *dones = batch[4] + (int64_t)s * b;
        const float *discounts = batch[5] + (int64_t)s * b;
        /* TD target: min over the target Q-networks at the (noisy, clipped) target action */
        actor_outs[0] = (float *)next_obs;
        forward(ctx, &actor_target, &actor_saved, b, actor_outs);
        float *next_actions = actor_outs[actor_layers];
        if (has_noise) {
            const float *noise = batch[6] + (int64_t)s * b * actions;
            for (int64_t i = 0; i < (int64_t)b * actions; i++) {
                float e = noise[i] < -noise_clip ? -noise_clip : (noise[i] > noise_clip ? noise_clip : noise[i]);
                float a = next_actions[i] + e;
                next_actions[i] = a < -1.0f ? -1.0f : (a > 1.0f ? 1.0f : a);
            }
        }
        concat(b, next_obs, features, next_actions, actions, input);
        for (int k = 0; k < n_critics; k++) {
            q_outs[k][0] = input;
            forward(ctx, &q_target[k], &q_saved[k], b, q_outs[k]);
            const float *values = q_outs[k][critic_layers];
            for (int r = 0; r < b; r++)
                next_q[r] = k == 0 || values[r] < next_q[r] || values[r] != values[r] ? values[r] : next_q[r];
        }
        for (int r = 0; r < b; r++) target_q[r] = rewards[r] + (1.0f - dones[r]) * discounts[r] * next_q[r];
        /* Critic: sum of the Q-networks' MSE; gradient 2 (q - y) / N */
        concat(b, obs, features, act, actions, input);
        double critic_loss = 0.0;
        for (int k = 0; k < n_critics; k++) {
            q_outs[k][0] = input;
            forward(ctx, &q[k], &q_saved[k], b, q_outs[k]);
            const float *values = q_outs[k][critic_layers];
            float squares = 0.0f;
            for (int r = 0; r < b; r++) {
                const float error = values[r] - target_q[r];
                squares += error * error;
                grad[r] = error * error_scale;
            }
            critic_loss += squares / (float)b;
            if (k == 0) {
                float total = 0.0f;
                for (int r = 0; r < b; r++) total += values[r];
                mean_q_sum += total / (float)b;
            }
            backward(ctx, &q[k], &q_saved[k], b, q_outs[k], grad, scratch, critic_grads + k * n_q, -1, NULL);
        }
        critic_loss_sum += critic_loss;
        float step_size, bias2;
        adam_scalars(rates[0], hyper[5], hyper[6], (double)critic_count + 1.0 + s, &step_size, &bias2);
        for (int k = 0; k < n_critics; k++)
            adam(&q[k], critic_grads + k * n_q, critic_avg + k * n_q, critic_sq + k * n_q, decays + n_actor + k * n_q,
                 hyper + 5, step_size, bias2);
        /* The steps whose number (counted over the model's life, from 1) is a multiple of policy_delay */
        if ((phase + s + 1) % delay != 0) continue;
        /* Actor: -mean(Q_1(s, mu(s))) through the updated first Q-network (no gradient for its parameters) */
        const int group = actor_steps++;
        actor_outs[0] = (float *)obs;
        forward(ctx, &actor, &actor_saved, b, actor_outs);
        concat(b, obs, features, actor_outs[actor_layers], actions, input);
        q_outs[0][0] = input;
        forward(ctx, &q[0], &q_saved[0], b, q_outs[0]);
        const float *values = q_outs[0][critic_layers];
        float total = 0.0f;
        for (int r = 0; r < b; r++) {
            total += values[r];
            grad[r] = actor_grad;
        }
        actor_loss_sum += -(total / (float)b);
        backward(ctx, &q[0], &q_saved[0], b, q_outs[0], grad, scratch, NULL, features, grad_actions);
        backward(ctx, &actor, &actor_saved, b, actor_outs, grad_actions, scratch, actor_grads, -1, NULL);
        adam_scalars(rates[1], hyper[2], hyper[3], (double)actor_count + 1.0 + group, &step_size, &bias2);
        adam(&actor, actor_grads, actor_avg, actor_sq, decays, hyper + 2, step_size, bias2);
        for (int k = 0; k < n_critics; k++) polyak(&q[k], &q_target[k], tau);
        polyak(&actor, &actor_target, tau);
    }
    /* The last step's gradients into the parameters' .grad (actor's, then the Q-networks'); the actor's only when
       this call updated it (otherwise they stay what the last actor update left, as in the eager loop) */
    for (int idx = 0; actor_steps > 0 && idx < n_actor; idx++)
        memcpy(grads_out[idx], actor_grads[idx], sizeof(float) * (size_t)n_params(&actor, idx));
    for (int idx = 0; idx < n_critic; idx++)
        memcpy(grads_out[n_actor + idx], critic_grads[idx], sizeof(float) * (size_t)n_params(&q[0], idx % n_q));
    /* Adam's step counters (0-d float32 tensors), as torch._foreach_add_ of the steps taken */
    for (int idx = 0; idx < n_critic; idx++) *step_counters[idx] = *step_counters[idx] + (float)steps;
    for (int idx = 0; idx < n_actor; idx++)
        *step_counters[n_critic + idx] = *step_counters[n_critic + idx] + (float)actor_steps;
    totals[0] = critic_loss_sum;
    totals[1] = mean_q_sum;
    totals[2] = actor_loss_sum;
    return 0;
}
"""

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "library" and "reason" once loading was tried


def _declare(library: ctypes.CDLL) -> ctypes.CDLL:
    pointer = ctypes.c_void_p
    library.ddpg_update.argtypes = [*[pointer] * 12, pointer, ctypes.c_int64, pointer]
    library.ddpg_update.restype = ctypes.c_int
    library.ddpg_workspace_floats.argtypes = [pointer] * 4
    library.ddpg_workspace_floats.restype = ctypes.c_int64
    return library


def _load() -> tuple[ctypes.CDLL | None, str | None]:
    if native_blas.torch_blas() is None and native_blas.numpy_blas() is None:
        return None, "neither this PyTorch's library nor numpy's exports the BLAS function sgemm"
    return native_build.build_and_load("ddpg_update", _SOURCE, _FLAGS, _declare)


def load_kernel() -> ctypes.CDLL | None:
    """
    :return: The compiled update (compiled on the first call of this machine, loaded on the first call of this
        process), or None (see :func:`unavailable_reason`)
    """
    with _lock:
        if "reason" not in _state:
            _state["library"], _state["reason"] = _load()
        return _state["library"]


def unavailable_reason() -> str | None:
    """:return: Why the native update is not available, or None when it is (loads it if that was not tried yet)"""
    load_kernel()
    return _state["reason"]


def _forget() -> None:
    """Forget the outcome of loading (tests: the next :func:`load_kernel` tries again)."""
    with _lock:
        _state.clear()


def _pointers(values: list[int]) -> ctypes.Array[ctypes.c_void_p]:
    return (ctypes.c_void_p * len(values))(*values)


def _sizes(weights: list[th.Tensor]) -> list[int]:
    # Input width, then each layer's output width
    return [int(weights[0].shape[1])] + [int(weight.shape[0]) for weight in weights]


def _adam_tensors(optimizer: th.optim.Optimizer, params: list[th.Tensor]) -> tuple[list[th.Tensor], ...]:
    """
    The optimizer's state tensors for the parameters, created as Adam creates them when a parameter has none yet
    (their layouts are checked by :class:`_PreparedCall`, their step counts by the kernel).

    :return: ``exp_avg``, ``exp_avg_sq`` and ``step`` tensors
    """
    avgs, sqs, steps = [], [], []
    for param in params:
        state = optimizer.state[param]
        if not state:
            # What Adam's _init_group puts there for fused/capturable steps: a 0-d float tensor on the device
            state["step"] = th.zeros((), dtype=th.float32, device=param.device)
            state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
            state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
        step = state["step"]
        if not isinstance(step, th.Tensor) or step.dim() != 0:
            raise _Unsupported("Adam's step counters are not 0-d tensors")
        avgs.append(state["exp_avg"])
        sqs.append(state["exp_avg_sq"])
        steps.append(step)
    return avgs, sqs, steps


def _norm_eps(mlp: PlainMLP) -> list[float]:
    """:return: Per hidden layer of the network, its layer norm's eps, or -1 when it has none"""
    return [-1.0 if norm is None else float(norm.eps) for norm in mlp.norms or ()]


class _PreparedCall:
    """
    The checked arguments of the kernel that stay the same from call to call (networks, state, shapes).

    :raises _Unsupported: When the tensors do not fit the kernel
    """

    def __init__(
        self,
        key: tuple[Any, ...],
        cfg: UpdateConfig,
        manual: ManualBackward,
        state: list[th.Tensor],
        batch: list[th.Tensor],
        counters: list[th.Tensor],
        grads: list[th.Tensor],
        targets: list[th.Tensor],
    ) -> None:
        self.key = key
        if {t.dtype for t in (*state, *counters, *grads)} != {th.float32} or not all(
            t.is_contiguous() and t.is_cpu for t in (*state, *grads)
        ):
            raise _Unsupported("the parameters, targets or optimizer state are not contiguous float32 CPU tensors")
        n_steps, batch_size = (int(d) for d in batch[0].shape[:2])
        # Per hidden layer, its layer norm's eps (-1: none): the same in each network and its target
        actor_norms = _norm_eps(manual.actor)
        critic_norms = _norm_eps(manual.q_networks[0])
        if _norm_eps(manual.actor_target) != actor_norms or any(
            _norm_eps(q_net) != critic_norms for q_net in (*manual.q_networks, *manual.q_networks_target)
        ):
            raise _Unsupported("the networks and their targets have different layer norms")
        # Parameters: each network's Linear weights and biases, then its layer norms' weights and biases
        n_actor = 2 * cfg.actor_layers + 2 * sum(eps >= 0 for eps in actor_norms)
        n_params = n_actor + (2 * cfg.critic_layers + 2 * sum(eps >= 0 for eps in critic_norms)) * cfg.n_critics
        params = state[:n_params]
        moments = state[2 * n_params :]
        # (the moments: actor's exp_avg, exp_avg_sq, then the Q-networks')
        same_shapes = [*params[:n_actor], *params[:n_actor], *params[n_actor:], *params[n_actor:]]
        weights = [*state[0 : 2 * cfg.actor_layers : 2], *state[n_actor : n_actor + 2 * cfg.critic_layers : 2]]
        actor_sizes = _sizes(weights[: cfg.actor_layers])
        critic_sizes = _sizes(weights[cfg.actor_layers :])
        actions = actor_sizes[-1]
        shapes_ok = (
            critic_sizes[0] == cfg.features_dim + actions
            and actor_sizes[0] == cfg.features_dim
            and critic_sizes[-1] == 1
            and batch[0].shape[2:] == (cfg.features_dim,)
            and batch[1].shape[2:] == (actions,)
            and all(x.shape[1:] == (batch_size, 1) for x in batch[3:6])
            and all(p.shape == g.shape for p, g in zip(params, grads, strict=True))
            and all(p.shape == t.shape for p, t in zip(params, targets, strict=True))
            and all(p.shape == m.shape for p, m in zip(same_shapes, moments, strict=True))
            and len(state) == 4 * n_params
        )
        if not shapes_ok:
            raise _Unsupported("the replay samples or targets do not have the networks' widths")
        library = load_kernel()
        assert library is not None
        # The BLAS for this network shape, picked by its largest product (native_blas: chosen once per machine)
        inner, columns = max(((t.shape[1], t.shape[0]) for t in weights), key=lambda shape: int(shape[0]) * int(shape[1]))
        try:
            self.blas = native_blas.choose(batch_size, int(inner), int(columns))
        except native_blas.BlasSettingError:
            raise  # (a wrong setting is the user's to fix: an error, not a silent fallback)
        except ValueError as error:
            raise _Unsupported(str(error)) from error
        blas = self.blas
        self.dims = (ctypes.c_int64 * 12)(
            n_steps,
            cfg.policy_delay,
            batch_size,
            cfg.features_dim,
            actions,
            cfg.actor_layers,
            cfg.critic_layers,
            cfg.n_critics,
            int(cfg.actor_tanh),
            int(cfg.critic_tanh),
            int(cfg.noise_clip is not None),
            int(blas.ilp64),
        )
        noise_clip = 0.0 if cfg.noise_clip is None else cfg.noise_clip
        betas_and_eps = (*cfg.actor_betas, cfg.actor_eps, *cfg.critic_betas, cfg.critic_eps)
        self.hyper = (ctypes.c_double * 8)(cfg.tau, noise_clip, *betas_and_eps)
        decays = [*cfg.actor_weight_decay, *cfg.critic_weight_decay]
        self.decays = (ctypes.c_float * len(decays))(*decays)
        self.actor_widths = (ctypes.c_int64 * len(actor_sizes))(*actor_sizes)
        self.critic_widths = (ctypes.c_int64 * len(critic_sizes))(*critic_sizes)
        self.norm_eps = (ctypes.c_double * (len(actor_norms) + len(critic_norms)))(*actor_norms, *critic_norms)
        self.state = _pointers([t.data_ptr() for t in state])
        self.counters = _pointers([t.data_ptr() for t in counters])
        self.grads = _pointers([t.data_ptr() for t in grads])
        self.workspace_floats = int(
            library.ddpg_workspace_floats(self.dims, self.actor_widths, self.critic_widths, self.norm_eps)
        )


class NativeUpdate(CompiledUpdate):
    """
    Runs the gradient steps of ``DDPGPlus.train()`` as one C loop (see the module's docstring).

    One instance per model (``DDPGPlus`` keeps it outside its saved data).
    """

    option = "native_update"
    takes_layer_norm = True

    def _split(self, updates: int, delay: int, steps: int) -> tuple[int, int]:
        # Every step, wherever the chunk starts in a group of policy_delay: there is no compilation to amortise
        return 0, steps

    failure = "the native update failed"

    def __init__(self) -> None:
        super().__init__()
        # Layer outputs, gradients and scratch of the kernel, kept between calls (grown when a call needs more)
        self._workspace = th.empty(0, dtype=th.float32)
        self._quiet = False
        self._prepared: _PreparedCall | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_workspace": th.empty(0, dtype=th.float32), "_quiet": False, "_prepared": None}

    def run(self, model: Any, manual: ManualBackward | None, gradient_steps: int, batch_size: int) -> LossSums | None:
        # native_update="auto" (the default) falls back without a warning: the user did not ask for this path
        self._quiet = getattr(model, "native_update", False) == "auto"
        return super().run(model, manual, gradient_steps, batch_size)

    def _fall_back(self, reason: str) -> None:
        if not self._quiet:
            super()._fall_back(reason)

    def _check_backend(self) -> None:
        if load_kernel() is None:
            raise _Unsupported(f"the C kernel is not available: {unavailable_reason()}")

    def _compiled_groups(
        self,
        model: Any,
        manual: ManualBackward,
        cfg: UpdateConfig,
        actor_group: AdamGroup,
        critic_group: AdamGroup,
        targets: list[th.Tensor],
        fields: list[th.Tensor],
        first: int,
        n_steps: int,
    ) -> th.Tensor:
        """
        Steps ``first, ..., first + n_steps - 1`` of the fields, in C (any number: the kernel updates the actor at the
        steps whose number is a multiple of ``policy_delay``).

        :return: Sums of the critic loss, the first Q-network's mean value and the actor loss over the steps
        :raises _Unsupported: When the inputs do not fit, or something unexpected failed before the kernel ran (then
            the eager loop runs from now on); nothing was changed, torch's generator included
        """
        rng_state = th.get_rng_state() if cfg.noise_clip is not None else None
        try:
            return self._native_steps(model, manual, cfg, actor_group, critic_group, targets, fields, first, n_steps)
        except Exception as error:
            if rng_state is not None:  # the eager steps then draw the same noise
                th.set_rng_state(rng_state)
            if isinstance(error, _Unsupported | native_blas.BlasSettingError):
                raise
            raise self._turned_off(error) from error

    def _native_steps(
        self,
        model: Any,
        manual: ManualBackward,
        cfg: UpdateConfig,
        actor_group: AdamGroup,
        critic_group: AdamGroup,
        targets: list[th.Tensor],
        fields: list[th.Tensor],
        first: int,
        n_steps: int,
    ) -> th.Tensor:
        library = load_kernel()
        assert library is not None
        actor_params = manual.actor.parameters()
        critic_params = [p for q_net in manual.q_networks for p in q_net.parameters()]
        # Read now, not once per call: an eager step may have created the state or rebuilt LeanAdam's counters
        actor_avg, actor_sq, actor_steps = _adam_tensors(model.actor.optimizer, actor_params)
        critic_avg, critic_sq, critic_steps = _adam_tensors(model.critic.optimizer, critic_params)
        state = [*actor_params, *critic_params, *targets, *actor_avg, *actor_sq, *critic_avg, *critic_sq]
        batch = [f[first : first + n_steps] for f in fields]  # (contiguous: slices of the first dimension)
        if cfg.noise_clip is not None:
            # One draw per step, as the eager loop's randn_like: the same numbers from torch's generator
            shape = batch[1].shape[1:]
            batch.append(th.stack([th.randn(shape).mul_(model.target_policy_noise) for _ in range(n_steps)]))
        counters = [*critic_steps, *actor_steps]
        # The last step's gradients end in .grad, as after the eager loop (an actor .grad made here is taken back
        # below if the call has no actor step: the eager loop would not have made it)
        no_actor_grad = [p for p in actor_params if p.grad is None]
        grads = [_grad_buffer(p) for p in (*actor_params, *critic_params)]
        if not all(t.dtype is th.float32 and t.is_contiguous() for t in batch):
            raise _Unsupported("the replay samples are not contiguous float32 tensors")
        tensors = [*state, *counters, *grads]
        # What the prepared call depends on; the addresses change when a tensor is replaced (optimizer state loaded,
        # a parameter's .data assigned, .grad set to None and made again)
        key = (cfg, tuple(t.shape for t in batch), tuple(t.data_ptr() for t in tensors))
        call = self._prepared
        if call is None or call.key != key:
            call = self._prepared = _PreparedCall(key, cfg, manual, state, batch, counters, grads, targets)
        if self._workspace.numel() < call.workspace_floats:
            self._workspace = th.empty(call.workspace_floats, dtype=th.float32)
        # Learning rates (the kernel takes Adam's bias corrections from them and the step counters), and where the
        # call starts in a group of policy_delay steps
        rates = (ctypes.c_double * 3)(critic_group[0], actor_group[0], model._n_updates % cfg.policy_delay)
        totals = (ctypes.c_double * 3)()
        with call.blas.threads_of_torch():
            code = library.ddpg_update(
                call.blas.address,
                call.dims,
                call.actor_widths,
                call.critic_widths,
                call.norm_eps,
                call.hyper,
                call.decays,
                call.state,
                _pointers([t.data_ptr() for t in batch]),
                rates,
                call.counters,
                call.grads,
                self._workspace.data_ptr(),
                self._workspace.numel(),
                totals,
            )
        if code == -3:
            raise _Unsupported("the parameters of one optimizer have taken different numbers of steps")
        if code != 0:
            # (-1, a workspace too small, cannot happen: it was sized by the kernel itself)
            raise _Unsupported("the native update takes at most 32 layers and 8 Q-networks")
        before = model._n_updates
        model._n_updates += n_steps
        if before // cfg.policy_delay == model._n_updates // cfg.policy_delay:  # (no actor step in this call)
            for param in no_actor_grad:
                param.grad = None
        return th.tensor(totals[:], dtype=th.float32)
