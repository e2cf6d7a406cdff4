// Shared helpers of the model tests: a scratch directory, error capture, a small config.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "model/config.h"
#include "model/synthetic.h"

namespace dsv4::test {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("dsv4_model_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

// The message of the dsv4::Error that `action` throws, or "" (and a test failure) if none.
template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected a dsv4::Error";
  return "";
}

// synthetic:tiny with a 512-token vocabulary: every tensor kind, small enough to write to disk
// in every test.
inline ModelConfig micro_config() {
  ModelConfig config = synthetic_config("tiny");
  config.vocab_size = 512;
  config.source = "micro";
  return config;
}

}  // namespace dsv4::test

namespace dsv4::test {

// Every field but `source`.
inline void expect_same_config(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.rope_head_dim, b.rope_head_dim);
  EXPECT_EQ(a.q_lora_rank, b.q_lora_rank);
  EXPECT_EQ(a.o_groups, b.o_groups);
  EXPECT_EQ(a.o_lora_rank, b.o_lora_rank);
  EXPECT_EQ(a.n_routed_experts, b.n_routed_experts);
  EXPECT_EQ(a.n_shared_experts, b.n_shared_experts);
  EXPECT_EQ(a.n_activated_experts, b.n_activated_experts);
  EXPECT_EQ(a.moe_inter_dim, b.moe_inter_dim);
  EXPECT_EQ(a.score_func, b.score_func);
  EXPECT_EQ(a.route_scale, b.route_scale);
  EXPECT_EQ(a.swiglu_limit, b.swiglu_limit);
  EXPECT_EQ(a.window_size, b.window_size);
  EXPECT_EQ(a.index_n_heads, b.index_n_heads);
  EXPECT_EQ(a.index_head_dim, b.index_head_dim);
  EXPECT_EQ(a.index_topk, b.index_topk);
  EXPECT_EQ(a.hc_mult, b.hc_mult);
  EXPECT_EQ(a.hc_sinkhorn_iters, b.hc_sinkhorn_iters);
  EXPECT_EQ(a.hc_eps, b.hc_eps);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.compress_rope_theta, b.compress_rope_theta);
  EXPECT_EQ(a.original_seq_len, b.original_seq_len);
  EXPECT_EQ(a.rope_factor, b.rope_factor);
  EXPECT_EQ(a.beta_fast, b.beta_fast);
  EXPECT_EQ(a.beta_slow, b.beta_slow);
  EXPECT_EQ(a.n_mtp_layers, b.n_mtp_layers);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].attention, b.layers[i].attention) << "layer " << i;
    EXPECT_EQ(a.layers[i].compress_ratio, b.layers[i].compress_ratio) << "layer " << i;
    EXPECT_EQ(a.layers[i].hash_routing, b.layers[i].hash_routing) << "layer " << i;
  }
}

}  // namespace dsv4::test

#include <cstring>
#include <type_traits>
#include <variant>
#include <vector>

#include "model/safetensors.h"
#include "model/safetensors_writer.h"
#include "model/tensor_schema.h"

namespace dsv4::test {

using TensorField =
    std::variant<const LinearWeight*, const std::vector<float>*, const std::vector<int32_t>*>;

// Every tensor of `weights` in schema order, by official name.
inline std::vector<std::pair<std::string, TensorField>> tensor_fields(const ModelConfig& config,
                                                                      const ModelWeights& weights) {
  std::vector<std::pair<std::string, TensorField>> fields;
  visit_tensors(config, weights,
                [&](const std::string& name, TensorRole, const std::vector<int64_t>&,
                    const auto& field) { fields.emplace_back(name, &field); });
  return fields;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Bit-for-bit equality of two ModelWeights shaped for `config`.
inline void expect_same_weights(const ModelConfig& config, const ModelWeights& a,
                                const ModelWeights& b) {
  ASSERT_EQ(a.mtp.size(), b.mtp.size());
  const auto fa = tensor_fields(config, a), fb = tensor_fields(config, b);
  ASSERT_EQ(fa.size(), fb.size());
  for (size_t i = 0; i < fa.size(); ++i) {
    const std::string& name = fa[i].first;
    if (const auto* la = std::get_if<const LinearWeight*>(&fa[i].second)) {
      const LinearWeight& x = **la;
      const LinearWeight& y = *std::get<const LinearWeight*>(fb[i].second);
      EXPECT_EQ(x.format, y.format) << name;
      EXPECT_EQ(x.rows, y.rows) << name;
      EXPECT_EQ(x.cols, y.cols) << name;
      EXPECT_TRUE(same_bits(x.values, y.values)) << name;
      EXPECT_TRUE(same_bits(x.scales, y.scales)) << name;
      EXPECT_EQ(x.global_scale, y.global_scale) << name;
    } else if (const auto* va = std::get_if<const std::vector<float>*>(&fa[i].second)) {
      EXPECT_TRUE(same_bits(**va, *std::get<const std::vector<float>*>(fb[i].second))) << name;
    } else {
      EXPECT_EQ(*std::get<const std::vector<int32_t>*>(fa[i].second),
                *std::get<const std::vector<int32_t>*>(fb[i].second))
          << name;
    }
  }
}

// One tensor of a file being rewritten by rewrite_safetensors.
struct EditableTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Rewrites a safetensors file; `edit(tensor)` may change the tensor, or return false to drop it,
// and `add(writer)` may add more.
template <typename Edit, typename Add>
void rewrite_safetensors(const std::filesystem::path& path, Edit edit, Add add) {
  SafetensorsWriter writer;
  add(writer);
  {
    const SafetensorsFile file(path);
    for (const TensorView& view : file.tensors()) {
      EditableTensor tensor{view.name, view.dtype, view.shape,
                            std::vector<uint8_t>(view.bytes.begin(), view.bytes.end())};
      if (edit(tensor)) writer.add(tensor.name, tensor.dtype, tensor.shape, tensor.bytes);
    }
  }
  writer.write(path);
}

template <typename Edit>
void rewrite_safetensors(const std::filesystem::path& path, Edit edit) {
  rewrite_safetensors(path, edit, [](SafetensorsWriter&) {});
}

}  // namespace dsv4::test
