#include "commands.h"
#include "core/npy.h"
#include "cpu/chunked_run.h"
#include "model/model_source.h"
#include "sequence_runner.h"

namespace dsv4::cli {
namespace {

struct LogitsOptions {
  std::string model, ids, chunks, numerics = "official", backend = "cpu", out;
};

}  // namespace

Command add_logits_command(CLI::App& app) {
  auto options = std::make_shared<LogitsOptions>();
  app.add_option("--model", options->model, "Model directory or synthetic:NAME")->required();
  app.add_option("--ids", options->ids, "Comma-separated token ids")->required();
  app.add_option(
      "--chunks", options->chunks,
      "Prefill chunk sizes; ids after them are fed one at a time (default: one prefill)");
  app.add_option("--numerics", options->numerics, "official | fp32");
  app.add_option("--backend", options->backend, "cpu | cuda");
  app.add_option("--out", options->out, "Output .npy file (float32 [n_ids, vocab])")->required();
  return [options] {
    require_backend(options->backend);
    const Numerics numerics = parse_numerics(options->numerics);
    const std::vector<int32_t> ids = parse_id_list(options->ids, "--ids");
    const std::vector<int32_t> chunks = options->chunks.empty()
                                            ? std::vector<int32_t>{int32_t(ids.size())}
                                            : parse_id_list(options->chunks, "--chunks");
    cpu::validate_chunks(ids.size(), chunks);
    const LoadedModel loaded = load_model(options->model);
    const auto runner =
        make_sequence_runner(options->backend, loaded, numerics, int64_t(ids.size()));
    // The chunks as prefill steps, then the remaining ids one decode step each.
    std::vector<float> logits;
    size_t fed = 0;
    const auto feed = [&](size_t count) {
      const std::vector<float> step = runner->feed(std::span(ids).subspan(fed, count));
      logits.insert(logits.end(), step.begin(), step.end());
      fed += count;
    };
    for (const int32_t chunk : chunks) feed(size_t(chunk));
    while (fed < ids.size()) feed(1);
    write_npy(options->out, {int64_t(ids.size()), loaded.config.vocab_size}, logits.data());
  };
}

}  // namespace dsv4::cli
