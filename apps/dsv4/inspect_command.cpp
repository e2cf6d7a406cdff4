#include <cstdio>

#include "commands.h"
#include "model/model_source.h"

namespace dsv4::cli {

Command add_inspect_command(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  app.add_option("--model", *model, "Model directory or synthetic:NAME")->required();
  return [model] { std::printf("%s", inspect_model(*model).c_str()); };
}

}  // namespace dsv4::cli
