#include "cpu/indexer.h"

#include <algorithm>
#include <numeric>

#include "cpu/activations.h"
#include "cpu/linear.h"

namespace dsv4::cpu {

std::vector<int64_t> indexer_select(const float* q, const float* weights, int64_t heads,
                                    int64_t dim, const float* keys, int64_t visible, int64_t topk,
                                    Numerics numerics) {
  std::vector<float> scores(static_cast<size_t>(visible));
  for (int64_t s = 0; s < visible; ++s) {
    float total = 0.0f;
    for (int64_t h = 0; h < heads; ++h) {
      const float logit = round_activation(dot(q + h * dim, keys + s * dim, dim), numerics);
      total += round_activation(std::max(logit, 0.0f) * weights[h], numerics);
    }
    scores[size_t(s)] = round_activation(total, numerics);
  }
  std::vector<int64_t> order(static_cast<size_t>(visible));
  std::iota(order.begin(), order.end(), int64_t{0});
  const auto keep = size_t(std::min(topk, visible));
  std::partial_sort(
      order.begin(), order.begin() + std::ptrdiff_t(keep), order.end(), [&](int64_t a, int64_t b) {
        return scores[size_t(a)] != scores[size_t(b)] ? scores[size_t(a)] > scores[size_t(b)]
                                                      : a < b;
      });
  order.resize(keep);
  return order;
}

}  // namespace dsv4::cpu
