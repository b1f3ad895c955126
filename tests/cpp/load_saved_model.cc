// Loads a SavedModel with TensorFlow's C++ SavedModel loader -- tensorflow::LoadSavedModel, the
// loader TF Serving uses -- runs one signature, and writes its outputs.
//
// usage: load_saved_model EXPORT_DIR SIGNATURE OUT_DIR [ALIAS=TENSOR_PROTO_FILE]...
//
// Each input is a file holding one binary-serialized tensorflow.TensorProto, fed to the signature
// input named ALIAS. Every output of the signature is written to OUT_DIR/<index>.pb as a binary
// TensorProto in typed fields (float_val, string_val, ...; as TF Serving answers by default), and
// OUT_DIR/outputs.txt lists "<index> <alias>" per line. One line per output ("alias dtype shape")
// goes to stdout. Any failure prints the status to stderr and exits 1; bad usage exits 2.

#include <cstdio>
#include <map>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor.pb.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/public/session.h"

namespace {

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "load_saved_model: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "load_saved_model: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s EXPORT_DIR SIGNATURE OUT_DIR [ALIAS=TENSOR_PROTO_FILE]...\n",
                 argv[0]);
    return 2;
  }
  const std::string export_dir = argv[1];
  const std::string signature_name = argv[2];
  const std::string out_dir = argv[3];
  tensorflow::Env* env = tensorflow::Env::Default();

  tensorflow::SavedModelBundle bundle;
  absl::Status status = tensorflow::LoadSavedModel(
      tensorflow::SessionOptions(), tensorflow::RunOptions(), export_dir, {"serve"}, &bundle);
  if (!status.ok()) return Fail("loading " + export_dir, status);

  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto found = signatures.find(signature_name);
  if (found == signatures.end()) return Fail("no signature named '" + signature_name + "'");
  const tensorflow::SignatureDef& signature = found->second;

  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  std::unordered_set<std::string> fed;
  for (int i = 4; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos) return Fail("expected ALIAS=FILE, got '" + arg + "'");
    const std::string alias = arg.substr(0, eq);
    auto input = signature.inputs().find(alias);
    if (input == signature.inputs().end()) return Fail("signature has no input '" + alias + "'");
    tensorflow::TensorProto proto;
    status = tensorflow::ReadBinaryProto(env, arg.substr(eq + 1), &proto);
    if (!status.ok()) return Fail("reading input '" + alias + "'", status);
    tensorflow::Tensor tensor;
    if (!tensor.FromProto(proto)) return Fail("tensor parsing error: " + alias);
    feeds.emplace_back(input->second.name(), std::move(tensor));
    fed.insert(alias);
  }
  for (const auto& input : signature.inputs()) {
    if (!fed.count(input.first)) return Fail("missing input '" + input.first + "'");
  }

  // Proto maps have no fixed order; fetch the outputs sorted by alias.
  const std::map<std::string, tensorflow::TensorInfo> outputs(signature.outputs().begin(),
                                                             signature.outputs().end());
  std::vector<std::string> fetch_names;
  for (const auto& output : outputs) fetch_names.push_back(output.second.name());
  std::vector<tensorflow::Tensor> results;
  status = bundle.session->Run(feeds, fetch_names, {}, &results);
  if (!status.ok()) return Fail("running signature '" + signature_name + "'", status);

  std::string index;
  int i = 0;
  for (const auto& output : outputs) {
    const tensorflow::Tensor& tensor = results[i];
    tensorflow::TensorProto proto;
    tensor.AsProtoField(&proto);
    const std::string path = out_dir + "/" + std::to_string(i) + ".pb";
    status = tensorflow::WriteBinaryProto(env, path, proto);
    if (!status.ok()) return Fail("writing output '" + output.first + "'", status);
    index += std::to_string(i) + " " + output.first + "\n";
    std::printf("%s %s %s\n", output.first.c_str(), tensorflow::DataTypeString(tensor.dtype()).c_str(),
                tensor.shape().DebugString().c_str());
    ++i;
  }
  status = tensorflow::WriteStringToFile(env, out_dir + "/outputs.txt", index);
  if (!status.ok()) return Fail("writing the output index", status);
  return 0;
}
