// `dsv4 inspect`: what a checkpoint holds and what it will take in memory, from the headers
// alone.
#include <fmt/format.h>

#include <map>

#include "model/checkpoint.h"

namespace dsv4 {
namespace {

std::string gigabytes(uint64_t bytes) {
  return fmt::format("{:.2f} GB", double(bytes) / 1e9);
}

}  // namespace

std::string inspect_checkpoint(const std::filesystem::path& dir) {
  const Checkpoint checkpoint = open_checkpoint(dir);
  const CheckpointPlan plan = plan_checkpoint(checkpoint);

  std::string out = checkpoint.config.describe();
  out += fmt::format("checkpoint: {} ({} layout), {} files, {} on disk\n", dir.string(),
                     checkpoint_layout_name(checkpoint.layout), checkpoint.store.files().size(),
                     gigabytes(checkpoint.store.file_bytes()));

  std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // count, bytes
  for (const TensorView& view : checkpoint.store.tensors()) {
    auto& [count, bytes] = by_dtype[dtype_name(view.dtype)];
    ++count;
    bytes += view.bytes.size();
  }
  out += fmt::format("tensors: {}", checkpoint.store.tensors().size());
  for (const auto& [dtype, entry] : by_dtype) {
    out += fmt::format("; {} {} ({})", entry.first, dtype, gigabytes(entry.second));
  }
  out += "\n";

  int64_t parameters = 0, mtp_parameters = 0, scales = 0;
  for (const PlannedTensor& tensor : plan.tensors) {
    (tensor.name.starts_with("mtp.") ? mtp_parameters : parameters) += tensor.element_count();
    scales += tensor.scale_count();
  }
  out += fmt::format("parameters: {:.3f} B in the main model, {:.3f} B in {} of {} MTP blocks\n",
                     double(parameters) / 1e9, double(mtp_parameters) / 1e9, plan.mtp_layers,
                     checkpoint.config.n_mtp_layers);
  // Decoded weights hold every value and every block scale as a 4-byte float.
  out += fmt::format("decoded weights in memory: {}\n",
                     gigabytes(uint64_t(parameters + mtp_parameters + scales) * 4));
  out += fmt::format("tensors not used by the config: {}\n", plan.warnings.size());
  for (size_t i = 0; i < std::min<size_t>(plan.warnings.size(), 5); ++i) {
    out += "  " + plan.warnings[i] + "\n";
  }
  return out;
}

}  // namespace dsv4
