// The whole configuration's checks (validate.hpp): each section by the layer that owns its values,
// then the rules across sections.
#include "apricot/pipeline/validate.hpp"

#include "apricot/core/errors.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/data/field.hpp"
#include "apricot/method/field.hpp"
#include "apricot/method/adapt.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/models/model.hpp"
#include "apricot/train/train.hpp"

namespace apricot {

void validate(const Config& c) {
  validate_run(c);
  validate(c.data);
  validate(c.model);
  if (c.model.pretrained && c.rdlm.init == "base-early")
    config_error("model.pretrained is true but rdlm.init is \"base-early\": a base that is not trained has no "
                 "early-epoch copy",
                 "set rdlm.init to \"base\" (rDLMs fine-tuned from your model) or \"scratch\"");
  validate(c.train);
  validate(c.rdlm);
  const auto& r = c.rdlm;
  require(r.init != "base-early" || r.init_epochs <= c.train.epochs, "rdlm.init_epochs", r.init_epochs,
          "<= train.epochs with rdlm.init base-early (the copy is taken during base training)");
  require(r.init != "base-early" || c.train.patience == 0 || r.init_epochs <= c.train.patience, "train.patience",
          c.train.patience,
          "0 or >= rdlm.init_epochs with rdlm.init base-early (early stopping could end base training before "
          "the copy is taken)");
  validate(c.adapt);
  validate(c.field);
  validate_field_recipe(c.field);
  for (const auto& name : c.adapt.strategies)
    if (is_field_arm(parse_strategy(name)) && c.field.format.empty())
      config_error("adapt.strategies lists the field arm \"" + name + "\" but no field set is configured "
                   "(field.format is \"\")",
                   "set field.format (npy or imagefolder) and field.root to the images the model gets wrong");
}

Config config_from_json(const nlohmann::json& j, const std::string& source) {
  Config c = config_from_json_unchecked(j, source);
  validate(c);
  return c;
}

Config parse_config_text(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  Config c = parse_config_text_unchecked(text, source, overrides);
  validate(c);
  return c;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config c = load_config_unchecked(path, overrides);
  validate(c);
  return c;
}

}  // namespace apricot
