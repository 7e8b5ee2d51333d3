// Loads the TorchScript PFK selection saved by examples/export_pfk_selection.py and runs it on the
// inputs saved beside it, with no Python: pfk_selection MODULE.pt INPUTS.pt
// Prints the selected pool indices, space-separated, on one line.

#include <torch/script.h>
#include <torch/serialize.h>

#include <torch_al.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

namespace {

std::vector<at::Tensor> tensor_list(const c10::Dict<c10::IValue, c10::IValue>& inputs, const char* key) {
  std::vector<at::Tensor> out;
  for (const auto& value : inputs.at(key).toListRef()) {
    out.push_back(value.toTensor());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODULE.pt INPUTS.pt\n";
    return 2;
  }
  auto module = torch::jit::load(argv[1]);
  std::ifstream file(argv[2], std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const auto inputs = torch::pickle_load(bytes).toGenericDict();
  const std::vector<c10::IValue> arguments{
      tensor_list(inputs, "query_z"), tensor_list(inputs, "pool_z"),     tensor_list(inputs, "query_g"),
      tensor_list(inputs, "pool_g"),  inputs.at("pool_mask").toTensor(), inputs.at("budget").toInt(),
  };
  const auto selected = module.forward(arguments).toTensor();
  for (int64_t i = 0; i < selected.numel(); ++i) {
    std::cout << (i ? " " : "") << selected[i].item<int64_t>();
  }
  std::cout << "\n";
  return 0;
}
