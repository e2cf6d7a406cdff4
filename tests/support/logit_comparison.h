// Agreement of two runs' logits, position by position: relative L2 distance (‖a − b‖ / ‖b‖)
// and argmax agreement, for the model-level tests (CPU vs CPU in another summation order,
// GPU vs CPU).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace dsv4::testing {

struct LogitComparison {
  std::vector<double> errors;  // per position
  int64_t agree = 0;

  void add(const std::vector<float>& got, const std::vector<float>& want, int64_t vocab) {
    for (size_t p = 0; p * size_t(vocab) < want.size() && p * size_t(vocab) < got.size(); ++p) {
      const float* g = got.data() + p * size_t(vocab);
      const float* w = want.data() + p * size_t(vocab);
      double diff = 0.0, norm = 0.0;
      for (int64_t i = 0; i < vocab; ++i) {
        diff += (double(g[i]) - w[i]) * (double(g[i]) - w[i]);
        norm += double(w[i]) * w[i];
      }
      errors.push_back(std::isfinite(diff) && norm > 0 ? std::sqrt(diff / norm) : INFINITY);
      agree += std::max_element(g, g + vocab) - g == std::max_element(w, w + vocab) - w;
    }
  }
  void add(const LogitComparison& other) {
    errors.insert(errors.end(), other.errors.begin(), other.errors.end());
    agree += other.agree;
  }

  int64_t positions() const { return int64_t(errors.size()); }
  double worst() const {
    return errors.empty() ? 0.0 : *std::max_element(errors.begin(), errors.end());
  }
  double mean() const {
    double sum = 0.0;
    for (double e : errors) sum += e;
    return errors.empty() ? 0.0 : sum / double(errors.size());
  }
  double fraction_within(double bound) const {
    return errors.empty() ? 1.0
                          : double(std::count_if(errors.begin(), errors.end(),
                                                 [bound](double e) { return e <= bound; })) /
                                double(errors.size());
  }
  double argmax_agreement() const {
    return errors.empty() ? 1.0 : double(agree) / double(errors.size());
  }
  void print(const char* name, double bound) const {
    std::printf("%s: %lld positions, rel L2 worst %.2e mean %.2e, within %.0e: %.4f, argmax %.4f\n",
                name, static_cast<long long>(positions()), worst(), mean(), bound,
                fraction_within(bound), argmax_agreement());
  }
};

}  // namespace dsv4::testing
