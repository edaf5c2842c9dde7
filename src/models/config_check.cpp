// The range checks of model.* (model.hpp).
#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/models/model.hpp"

namespace apricot {

void validate(const ModelConfig& m) {
  std::vector<std::string> archs = model_archs();
  archs.push_back("torchscript");
  require_one_of("model.arch", m.arch, archs);
  if (m.arch == "torchscript" && m.path.empty())
    config_error("config key 'model.path' is empty but model.arch is \"torchscript\"",
                 "set model.path to a file written by torch.jit.save(torch.jit.script(model), path)");
  if (m.pretrained && m.arch != "torchscript")
    config_error("config key 'model.pretrained' is true but model.arch is \"" + m.arch + "\"",
                 "model.pretrained takes a TorchScript file's weights as the base model (model.arch torchscript)");
  require_one_of("model.resnet_variant", m.resnet_variant, {"v1", "preact"});
}

}  // namespace apricot
