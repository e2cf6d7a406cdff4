#include "sequence_runner.h"

#include <algorithm>

#include "core/error.h"
#include "cpu/model.h"

#ifdef DSV4_HAVE_CUDA
#include "cuda/kernels/sampling/sampling.h"
#include "cuda/model/cuda_model.h"
#include "cuda/model/device_weights.h"
#include "cuda/runtime/check.h"
#include "cuda/runtime/device.h"
#endif

namespace dsv4::cli {

int32_t SequenceRunner::feed_and_sample(std::span<const int32_t> ids, Sampler& sampler,
                                        size_t sampling_vocab) {
  const std::vector<float> logits = feed(ids);
  const auto vocab = size_t(config().vocab_size);
  return sampler.sample(std::span(logits).last(vocab).first(sampling_vocab));
}

namespace {

class CpuRunner final : public SequenceRunner {
 public:
  CpuRunner(const LoadedModel& model, Numerics numerics)
      : model_(model.config, model.weights, numerics) {}
  const ModelConfig& config() const override { return model_.config(); }
  void restart() override { sequence_.reset(); }
  std::vector<float> feed(std::span<const int32_t> ids) override {
    if (!sequence_) sequence_ = model_.new_sequence();
    const cpu::Model::Chunk chunk{sequence_.get(), ids};
    return model_.forward(std::span(&chunk, 1));
  }

 private:
  cpu::Model model_;
  std::unique_ptr<cpu::SequenceState> sequence_;
};

#ifdef DSV4_HAVE_CUDA
// Prompt tokens per CUDA step: bounds the activation scratch; longer prompts take several.
constexpr int64_t kCudaStepTokens = 512;

class CudaRunner final : public SequenceRunner {
 public:
  CudaRunner(const LoadedModel& model, int64_t max_length)
      : model_(model.config, cuda::upload_weights(model.config, model.weights),
               {1, kCudaStepTokens, max_length}) {}
  const ModelConfig& config() const override { return model_.config(); }
  void restart() override {
    if (slot_ >= 0) model_.release(slot_);
    slot_ = -1;
  }
  std::vector<float> feed(std::span<const int32_t> ids) override {
    std::vector<float> logits;
    for_each_step(ids, [&](const cuda::CudaModel::Chunk& chunk) {
      std::vector<float> step = model_.forward(std::span(&chunk, 1));
      if (logits.empty()) {
        logits = std::move(step);
      } else {
        logits.insert(logits.end(), step.begin(), step.end());
      }
    });
    return logits;
  }

  // The steps without copying logits back; the token sampler runs on the last row on the GPU
  // (the CPU sampler's choice for the same draw) and only the id comes back.
  int32_t feed_and_sample(std::span<const int32_t> ids, Sampler& sampler,
                          size_t sampling_vocab) override {
    if (ids.empty()) fail("feed_and_sample: no ids to feed");
    int32_t last_step_tokens = 0;
    for_each_step(ids, [&](const cuda::CudaModel::Chunk& chunk) {
      last_step_tokens = model_.step(std::span(&chunk, 1));
    });
    if (!token_sampler_ || token_sampler_->vocab() != int64_t(sampling_vocab)) {
      token_sampler_ = std::make_unique<cuda::TokenSampler>(1, int64_t(sampling_vocab));
    }
    const cudaStream_t stream = model_.stream();
    const float* row = model_.logits() + int64_t(last_step_tokens - 1) * config().vocab_size;
    const SamplingParams& params = sampler.params();
    if (params.temperature == 0.0f) {
      token_sampler_->argmax(row, 1, choice_.data(), stream);
    } else {
      const double uniform = sampler.next_uniform();
      if (params.temperature != device_temperature_ || params.top_p != device_top_p_) {
        // Once per sampler setting, not per token.
        DSV4_CUDA_CHECK(cudaMemcpyAsync(temperature_.data(), &params.temperature, sizeof(float),
                                        cudaMemcpyHostToDevice, stream));
        DSV4_CUDA_CHECK(cudaMemcpyAsync(top_p_.data(), &params.top_p, sizeof(float),
                                        cudaMemcpyHostToDevice, stream));
        device_temperature_ = params.temperature;
        device_top_p_ = params.top_p;
      }
      DSV4_CUDA_CHECK(cudaMemcpyAsync(uniform_.data(), &uniform, sizeof(double),
                                      cudaMemcpyHostToDevice, stream));
      token_sampler_->sample(row, 1, temperature_.data(), top_p_.data(), uniform_.data(),
                             choice_.data(), stream);
    }
    int32_t id = 0;
    DSV4_CUDA_CHECK(
        cudaMemcpyAsync(&id, choice_.data(), sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
    DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
    return id;
  }

 private:
  // Runs `step` on `ids` in chunks of at most kCudaStepTokens, in the sequence's slot.
  template <class Step>
  void for_each_step(std::span<const int32_t> ids, Step&& step) {
    if (slot_ < 0) slot_ = model_.admit();
    for (size_t begin = 0; begin < ids.size(); begin += size_t(kCudaStepTokens)) {
      const auto part = ids.subspan(begin, std::min(ids.size() - begin, size_t(kCudaStepTokens)));
      step(cuda::CudaModel::Chunk{slot_, part});
    }
  }

  cuda::CudaModel model_;
  int32_t slot_ = -1;
  std::unique_ptr<cuda::TokenSampler> token_sampler_;  // sized for the sampling vocabulary
  cuda::DeviceBuffer<float> temperature_{1}, top_p_{1};
  float device_temperature_ = -1.0f, device_top_p_ = -1.0f;  // what the buffers hold (-1: none)
  cuda::DeviceBuffer<double> uniform_{1};
  cuda::DeviceBuffer<int32_t> choice_{1};
};
#endif

}  // namespace

std::unique_ptr<SequenceRunner> make_sequence_runner(const std::string& backend,
                                                     const LoadedModel& model, Numerics numerics,
                                                     int64_t max_length) {
  if (backend == "cpu") return std::make_unique<CpuRunner>(model, numerics);
  if (backend != "cuda") fail("--backend: unknown backend '{}' (expected cpu or cuda)", backend);
#ifdef DSV4_HAVE_CUDA
  if (cuda::device_count() == 0) fail("--backend cuda: no CUDA GPU is visible on this machine");
  if (numerics != Numerics::kOfficial) {
    fail("--backend cuda runs official numerics only; use --backend cpu for --numerics fp32");
  }
  return std::make_unique<CudaRunner>(model, max_length);
#else
  (void)model;
  (void)max_length;
  fail("--backend cuda: this build has no CUDA support (nvcc was not found when it was built)");
#endif
}

}  // namespace dsv4::cli
