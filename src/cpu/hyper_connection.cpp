#include "cpu/hyper_connection.h"

#include <cmath>

#include "core/thread_pool.h"
#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {
namespace {

float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

// mixes[j] = (fn_j · x̂) · rsqrt(mean(x̂²) + eps) over the flattened streams of one token.
void compute_mixes(const float* flat, int64_t width, const std::vector<float>& fn, int64_t count,
                   double eps, float* mixes) {
  const float inv = 1.0f / std::sqrt(dot(flat, flat, width) / float(width) + float(eps));
  for (int64_t j = 0; j < count; ++j) mixes[j] = dot(fn.data() + j * width, flat, width) * inv;
}

}  // namespace

void sinkhorn(float* c, int64_t n, int64_t iters, float eps) {
  for (int64_t j = 0; j < n; ++j) {
    float* row = c + j * n;
    float max = row[0];
    for (int64_t k = 1; k < n; ++k) max = std::fmax(max, row[k]);
    float sum = 0.0f;
    for (int64_t k = 0; k < n; ++k) sum += (row[k] = std::exp(row[k] - max));
    for (int64_t k = 0; k < n; ++k) row[k] = row[k] / sum + eps;
  }
  const auto normalise_columns = [&] {
    for (int64_t k = 0; k < n; ++k) {
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) sum += c[j * n + k];
      for (int64_t j = 0; j < n; ++j) c[j * n + k] /= sum + eps;
    }
  };
  normalise_columns();
  for (int64_t it = 1; it < iters; ++it) {
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int64_t k = 0; k < n; ++k) sum += c[j * n + k];
      for (int64_t k = 0; k < n; ++k) c[j * n + k] /= sum + eps;
    }
    normalise_columns();
  }
}

namespace {

void weighted_stream_sum(const float* streams, const float* pre, int64_t hc, int64_t dim,
                         Numerics numerics, float* out) {
  for (int64_t i = 0; i < dim; ++i) {
    float sum = 0.0f;
    for (int64_t j = 0; j < hc; ++j) sum += pre[j] * streams[j * dim + i];
    out[i] = round_activation(sum, numerics);
  }
}

}  // namespace

HyperConnectionMix hyper_connection_collapse(const float* streams, int64_t tokens,
                                             const ModelConfig& config,
                                             const HyperConnectionWeights& weights,
                                             Numerics numerics, float* collapsed) {
  const int64_t hc = config.hc_mult, dim = config.dim, width = hc * dim, mix = config.mix_hc();
  const float eps = float(config.hc_eps);
  HyperConnectionMix result{std::vector<float>(size_t(tokens * hc)),
                            std::vector<float>(size_t(tokens * hc * hc))};
  ThreadPool::global().parallel_for(size_t(tokens), 1, [&](size_t begin, size_t end) {
    std::vector<float> mixes(static_cast<size_t>(mix)), pre(static_cast<size_t>(hc));
    for (size_t t = begin; t < end; ++t) {
      const float* x = streams + int64_t(t) * width;
      compute_mixes(x, width, weights.fn, mix, config.norm_eps, mixes.data());
      const float* scale = weights.scale.data();
      const float* base = weights.base.data();
      for (int64_t j = 0; j < hc; ++j) {
        pre[size_t(j)] = sigmoid(mixes[size_t(j)] * scale[0] + base[j]) + eps;
        result.post[t * size_t(hc) + size_t(j)] =
            2.0f * sigmoid(mixes[size_t(hc + j)] * scale[1] + base[hc + j]);
      }
      float* comb = result.comb.data() + t * size_t(hc * hc);
      for (int64_t j = 0; j < hc * hc; ++j) {
        comb[j] = mixes[size_t(2 * hc + j)] * scale[2] + base[2 * hc + j];
      }
      sinkhorn(comb, hc, config.hc_sinkhorn_iters, eps);
      weighted_stream_sum(x, pre.data(), hc, dim, numerics, collapsed + int64_t(t) * dim);
    }
  });
  return result;
}

void hyper_connection_expand(float* streams, const float* output, int64_t tokens,
                             const ModelConfig& config, const HyperConnectionMix& mix,
                             Numerics numerics) {
  const int64_t hc = config.hc_mult, dim = config.dim;
  ThreadPool::global().parallel_for(size_t(tokens), 1, [&](size_t begin, size_t end) {
    std::vector<float> mixed(size_t(hc * dim));
    for (size_t t = begin; t < end; ++t) {
      float* x = streams + int64_t(t) * hc * dim;
      const float* o = output + int64_t(t) * dim;
      const float* post = mix.post.data() + t * size_t(hc);
      const float* comb = mix.comb.data() + t * size_t(hc * hc);
      for (int64_t k = 0; k < hc; ++k) {
        for (int64_t i = 0; i < dim; ++i) {
          float residual = 0.0f;
          for (int64_t j = 0; j < hc; ++j) residual += comb[j * hc + k] * x[j * dim + i];
          mixed[size_t(k * dim + i)] = round_activation(post[k] * o[i] + residual, numerics);
        }
      }
      std::copy(mixed.begin(), mixed.end(), x);
    }
  });
}

void hyper_connection_head(const float* streams, int64_t tokens, const ModelConfig& config,
                           const HyperConnectionWeights& weights, Numerics numerics,
                           float* collapsed) {
  const int64_t hc = config.hc_mult, dim = config.dim, width = hc * dim;
  std::vector<float> mixes(static_cast<size_t>(hc)), pre(static_cast<size_t>(hc));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = streams + t * width;
    compute_mixes(x, width, weights.fn, hc, config.norm_eps, mixes.data());
    for (int64_t j = 0; j < hc; ++j) {
      pre[size_t(j)] = sigmoid(mixes[size_t(j)] * weights.scale[0] + weights.base[size_t(j)]) +
                       float(config.hc_eps);
    }
    weighted_stream_sum(x, pre.data(), hc, dim, numerics, collapsed + t * dim);
  }
}

}  // namespace dsv4::cpu
