// Decoding a checked checkpoint into ModelWeights, one tensor after another, each tensor split
// over the thread pool.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <type_traits>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/weight_decoding.h"

namespace dsv4 {
namespace {

// Loads smaller than this finish in a moment and stay quiet.
constexpr uint64_t kProgressThresholdBytes = uint64_t(1) << 30;

// Prints a line on stderr each time another tenth of the bytes has been decoded.
class Progress {
 public:
  explicit Progress(uint64_t total_bytes)
      : total_(total_bytes), enabled_(total_bytes >= kProgressThresholdBytes) {}

  void advance(uint64_t bytes) {
    done_ += bytes;
    if (!enabled_) return;
    const int tenth = int(done_ * 10 / total_);
    if (tenth <= printed_tenth_) return;
    printed_tenth_ = tenth;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "%s",
                 fmt::format("dsv4: loading weights {:3d}% ({:.1f} of {:.1f} GB, {:.2f} GB/s)\n",
                             tenth * 10, double(done_) / 1e9, double(total_) / 1e9,
                             double(done_) / 1e9 / std::max(seconds, 1e-9))
                     .c_str());
  }

 private:
  uint64_t total_, done_ = 0;
  bool enabled_;
  int printed_tenth_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

CheckpointWeights load_checkpoint_weights(const Checkpoint& checkpoint) {
  const ModelConfig& config = checkpoint.config;
  CheckpointPlan plan = plan_checkpoint(checkpoint);
  uint64_t total_bytes = 0;
  for (const PlannedTensor& tensor : plan.tensors) total_bytes += tensor.stored_bytes();
  Progress progress(total_bytes);

  CheckpointWeights out{empty_weights(config, plan.mtp_layers), std::move(plan.warnings)};
  size_t next = 0;
  visit_tensors(
      config, out.weights,
      [&](const std::string& name, TensorRole, const std::vector<int64_t>& shape, auto& field) {
        const PlannedTensor& tensor = plan.tensors.at(next++);
        if (tensor.name != name) fail("checkpoint plan out of step at '{}'", name);
        using Field = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_same_v<Field, LinearWeight>) {
          decode_linear(*tensor.weight, tensor.scale, tensor.global_scale, tensor.format, shape[0],
                        shape[1], field);
        } else if constexpr (std::is_same_v<Field, std::vector<float>>) {
          decode_floats(*tensor.weight, field);
        } else {
          decode_expert_table(*tensor.weight, config.n_routed_experts, field);
        }
        progress.advance(tensor.stored_bytes());
      });
  return out;
}

}  // namespace dsv4
