#include <charconv>

#include "commands.h"
#include "core/error.h"

#ifdef DSV4_HAVE_CUDA
#include "cuda/runtime/device.h"
#endif

namespace dsv4::cli {

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& option) {
  std::vector<int32_t> ids;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    int32_t value = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size()) {
      fail("{}: '{}' is not a comma-separated list of integers (bad item '{}')", option, text,
           item);
    }
    ids.push_back(value);
    begin = end + 1;
  }
  return ids;
}

void require_backend(const std::string& backend) {
  if (backend == "cpu") return;
  if (backend != "cuda") fail("--backend: unknown backend '{}' (expected cpu or cuda)", backend);
#ifdef DSV4_HAVE_CUDA
  if (cuda::device_count() == 0) fail("--backend cuda: no CUDA GPU is visible on this machine");
#else
  fail("--backend cuda: this build has no CUDA support (nvcc was not found when it was built)");
#endif
}

}  // namespace dsv4::cli
